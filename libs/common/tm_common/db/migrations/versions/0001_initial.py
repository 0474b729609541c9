"""Initial schema: market data, model outputs, orders, fills, portfolio, model registry
(2026-11-01).

The SQL is what this revision first ran, quirks included: the check on ``model_registry.stage`` is
named ``ck_model_registry_ck_model_registry_stage`` (Alembic applied the ``ck_%(table_name)s_...``
naming convention of ``tables.py`` to a name already prefixed; ``tables.py`` says
``ck_model_registry_stage``, and Alembic's comparison does not look at check constraints), and
``portfolio_snapshots.bar_time_ms`` is ``{bigserial}`` (see ``ddl``; 0004 drops its default).
"""
import sqlalchemy as sa
from alembic import op

from tm_common.db.migrations import ddl

revision = "0001_initial"
down_revision = None

BAR_CHUNK_MS = 30 * 24 * 3600 * 1000  # one hypertable chunk per ~30 days of bars

UPGRADE = """
CREATE TABLE bars (
    instrument VARCHAR(32) NOT NULL,
    interval_min INTEGER NOT NULL,
    open_time_ms BIGINT NOT NULL,
    close_time_ms BIGINT NOT NULL,
    open {decimal} NOT NULL,
    high {decimal} NOT NULL,
    low {decimal} NOT NULL,
    close {decimal} NOT NULL,
    volume {decimal} NOT NULL,
    turnover {decimal},
    source VARCHAR(16) DEFAULT 'live' NOT NULL,
    CONSTRAINT pk_bars PRIMARY KEY (instrument, interval_min, open_time_ms)
);

CREATE TABLE dvol (
    currency VARCHAR(16) NOT NULL,
    day_ms BIGINT NOT NULL,
    known_at_ms BIGINT NOT NULL,
    value FLOAT NOT NULL,
    CONSTRAINT pk_dvol PRIMARY KEY (currency, day_ms)
);

CREATE TABLE regimes (
    instrument VARCHAR(32) NOT NULL,
    bar_time_ms BIGINT NOT NULL,
    label VARCHAR(16) NOT NULL,
    probabilities {json} NOT NULL,
    volatility FLOAT NOT NULL,
    kelly_fraction FLOAT NOT NULL,
    model_version VARCHAR(64) DEFAULT '' NOT NULL,
    event_id VARCHAR(64),
    CONSTRAINT pk_regimes PRIMARY KEY (instrument, bar_time_ms)
);

CREATE TABLE signals (
    instrument VARCHAR(32) NOT NULL,
    bar_time_ms BIGINT NOT NULL,
    direction SMALLINT NOT NULL,
    probability FLOAT NOT NULL,
    confidence FLOAT NOT NULL,
    live_ic FLOAT,
    model_version VARCHAR(64) DEFAULT '' NOT NULL,
    inference_us FLOAT,
    reason TEXT DEFAULT '' NOT NULL,
    event_id VARCHAR(64),
    CONSTRAINT pk_signals PRIMARY KEY (instrument, bar_time_ms)
);

CREATE TABLE targets (
    instrument VARCHAR(32) NOT NULL,
    bar_time_ms BIGINT NOT NULL,
    target_fraction FLOAT NOT NULL,
    tier VARCHAR(16) NOT NULL,
    reason TEXT DEFAULT '' NOT NULL,
    rl_fraction FLOAT,
    kelly_fraction FLOAT DEFAULT '0' NOT NULL,
    regime VARCHAR(16),
    regime_stale BOOLEAN DEFAULT {false} NOT NULL,
    policy_version VARCHAR(64) DEFAULT '' NOT NULL,
    event_id VARCHAR(64),
    CONSTRAINT pk_targets PRIMARY KEY (instrument, bar_time_ms)
);

CREATE TABLE orders (
    intent_id VARCHAR(64) NOT NULL,
    order_link_id VARCHAR(64) NOT NULL,
    instrument VARCHAR(32) NOT NULL,
    bar_time_ms BIGINT NOT NULL,
    side VARCHAR(4) NOT NULL,
    order_type VARCHAR(8) DEFAULT 'Market' NOT NULL,
    qty {decimal} NOT NULL,
    price {decimal},
    reduce_only BOOLEAN DEFAULT {false} NOT NULL,
    target_qty {decimal},
    status VARCHAR(24) NOT NULL,
    order_id VARCHAR(64),
    filled_qty {decimal},
    avg_price {decimal},
    ret_code INTEGER,
    ret_msg TEXT,
    created_at_ms BIGINT,
    updated_at_ms BIGINT,
    event_id VARCHAR(64),
    CONSTRAINT pk_orders PRIMARY KEY (intent_id),
    CONSTRAINT uq_orders_order_link_id UNIQUE (order_link_id)
);

CREATE INDEX ix_orders_instrument_bar_time_ms ON orders (instrument, bar_time_ms);

CREATE INDEX ix_orders_status ON orders (status);

CREATE TABLE fills (
    exec_id VARCHAR(64) NOT NULL,
    intent_id VARCHAR(64) NOT NULL,
    order_link_id VARCHAR(64) NOT NULL,
    order_id VARCHAR(64) NOT NULL,
    instrument VARCHAR(32) NOT NULL,
    side VARCHAR(4) NOT NULL,
    qty {decimal} NOT NULL,
    price {decimal} NOT NULL,
    fee {decimal} NOT NULL,
    fee_currency VARCHAR(8) DEFAULT 'USDT' NOT NULL,
    is_maker BOOLEAN DEFAULT {false} NOT NULL,
    exec_time_ms BIGINT NOT NULL,
    event_id VARCHAR(64),
    CONSTRAINT pk_fills PRIMARY KEY (exec_id)
);

CREATE INDEX ix_fills_intent_id ON fills (intent_id);

CREATE INDEX ix_fills_instrument_exec_time_ms ON fills (instrument, exec_time_ms);

CREATE TABLE portfolio_snapshots (
    bar_time_ms {bigserial} NOT NULL,
    equity {decimal} NOT NULL,
    cash {decimal} NOT NULL,
    realised_pnl {decimal} NOT NULL,
    unrealised_pnl {decimal} NOT NULL,
    fees {decimal} NOT NULL,
    funding {decimal} NOT NULL,
    peak_equity {decimal} NOT NULL,
    drawdown FLOAT NOT NULL,
    positions {json} NOT NULL,
    event_id VARCHAR(64),
    CONSTRAINT pk_portfolio_snapshots PRIMARY KEY (bar_time_ms)
);

CREATE TABLE model_registry (
    version VARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    instrument VARCHAR(32),
    stage VARCHAR(16) DEFAULT 'candidate' NOT NULL,
    created_at_ms BIGINT NOT NULL,
    parent_version VARCHAR(64),
    data_hash VARCHAR(128) NOT NULL,
    features {json} NOT NULL,
    params {json} NOT NULL,
    seed BIGINT NOT NULL,
    metrics {json} NOT NULL,
    artifact {bytes},
    artifact_format VARCHAR(16),
    CONSTRAINT pk_model_registry PRIMARY KEY (version),
    CONSTRAINT ck_model_registry_ck_model_registry_stage CHECK (stage IN ('candidate', 'production', 'archived'))
);

CREATE INDEX ix_model_registry_kind_instrument_stage ON model_registry (kind, instrument, stage);

CREATE TABLE processed_events (
    consumer VARCHAR(64) NOT NULL,
    event_id VARCHAR(64) NOT NULL,
    event_type VARCHAR(64) DEFAULT '' NOT NULL,
    processed_at_ms BIGINT,
    CONSTRAINT pk_processed_events PRIMARY KEY (consumer, event_id)
);
"""

DOWNGRADE = """
DROP TABLE processed_events;
DROP TABLE model_registry;
DROP TABLE portfolio_snapshots;
DROP TABLE fills;
DROP TABLE orders;
DROP TABLE targets;
DROP TABLE signals;
DROP TABLE regimes;
DROP TABLE dvol;
DROP TABLE bars;
"""


def upgrade() -> None:
    ddl.run(UPGRADE)
    _timescale_bars()


def _timescale_bars() -> None:
    """Make ``bars`` a hypertable when TimescaleDB can be loaded; otherwise do nothing."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or op.get_context().as_sql:
        return
    available = bind.execute(sa.text(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first()
    if not available:
        return
    # Available is not loadable (it needs shared_preload_libraries): a savepoint keeps a failure
    # from aborting the whole migration transaction.
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
            bind.execute(sa.text(
                "SELECT create_hypertable('bars', 'open_time_ms', chunk_time_interval => "
                f"{BAR_CHUNK_MS}::bigint, if_not_exists => TRUE, migrate_data => TRUE)"))
    except sa.exc.DBAPIError as e:
        import logging

        logging.getLogger("alembic.runtime.migration").warning(
            "TimescaleDB is available but could not be enabled; bars stays a plain table: %s",
            e.orig)


def downgrade() -> None:
    ddl.run(DOWNGRADE)
