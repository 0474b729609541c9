"""Initial schema: market data, model outputs, orders, fills, portfolio, model registry.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-01

Types are spelled out here (not imported from ``tm_common.db.types``) so that this revision keeps
creating the same DDL whatever the application code becomes. Exact decimals are ``NUMERIC`` on
PostgreSQL and text on SQLite (see ``tm_common.db.types.ExactDecimal``).
"""
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BAR_CHUNK_MS = 30 * 24 * 3600 * 1000  # one hypertable chunk per ~30 days of bars


def _dec() -> sa.types.TypeEngine[Any]:
    return sa.Numeric().with_variant(sa.String(64), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _event_id() -> sa.Column[str]:
    return sa.Column("event_id", sa.String(64), nullable=True)


def _per_bar(name: str, *columns: sa.Column[Any]) -> None:
    op.create_table(
        name,
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("bar_time_ms", sa.BigInteger, nullable=False),
        *columns,
        _event_id(),
        sa.PrimaryKeyConstraint("instrument", "bar_time_ms", name=f"pk_{name}"),
    )


def upgrade() -> None:
    op.create_table(
        "bars",
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("interval_min", sa.Integer, nullable=False),
        sa.Column("open_time_ms", sa.BigInteger, nullable=False),
        sa.Column("close_time_ms", sa.BigInteger, nullable=False),
        *(sa.Column(c, _dec(), nullable=False) for c in ("open", "high", "low", "close", "volume")),
        sa.Column("turnover", _dec(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False, server_default="live"),
        sa.PrimaryKeyConstraint("instrument", "interval_min", "open_time_ms", name="pk_bars"),
    )
    op.create_table(
        "dvol",
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("day_ms", sa.BigInteger, nullable=False),
        sa.Column("known_at_ms", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("currency", "day_ms", name="pk_dvol"),
    )
    _per_bar(
        "regimes",
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("probabilities", _json(), nullable=False),
        sa.Column("volatility", sa.Float, nullable=False),
        sa.Column("kelly_fraction", sa.Float, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False, server_default=""),
    )
    _per_bar(
        "signals",
        sa.Column("direction", sa.SmallInteger, nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("live_ic", sa.Float, nullable=True),
        sa.Column("model_version", sa.String(64), nullable=False, server_default=""),
        sa.Column("inference_us", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
    )
    _per_bar(
        "targets",
        sa.Column("target_fraction", sa.Float, nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("rl_fraction", sa.Float, nullable=True),
        sa.Column("kelly_fraction", sa.Float, nullable=False, server_default="0"),
        sa.Column("regime", sa.String(16), nullable=True),
        sa.Column("regime_stale", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("policy_version", sa.String(64), nullable=False, server_default=""),
    )
    op.create_table(
        "orders",
        sa.Column("intent_id", sa.String(64), nullable=False),
        sa.Column("order_link_id", sa.String(64), nullable=False),
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("bar_time_ms", sa.BigInteger, nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False, server_default="Market"),
        sa.Column("qty", _dec(), nullable=False),
        sa.Column("price", _dec(), nullable=True),
        sa.Column("reduce_only", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("target_qty", _dec(), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("filled_qty", _dec(), nullable=True),
        sa.Column("avg_price", _dec(), nullable=True),
        sa.Column("ret_code", sa.Integer, nullable=True),
        sa.Column("ret_msg", sa.Text, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=True),
        _event_id(),
        sa.PrimaryKeyConstraint("intent_id", name="pk_orders"),
        sa.UniqueConstraint("order_link_id", name="uq_orders_order_link_id"),
    )
    op.create_index("ix_orders_instrument_bar_time_ms", "orders", ["instrument", "bar_time_ms"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "fills",
        sa.Column("exec_id", sa.String(64), nullable=False),
        sa.Column("intent_id", sa.String(64), nullable=False),
        sa.Column("order_link_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", _dec(), nullable=False),
        sa.Column("price", _dec(), nullable=False),
        sa.Column("fee", _dec(), nullable=False),
        sa.Column("fee_currency", sa.String(8), nullable=False, server_default="USDT"),
        sa.Column("is_maker", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("exec_time_ms", sa.BigInteger, nullable=False),
        _event_id(),
        sa.PrimaryKeyConstraint("exec_id", name="pk_fills"),
    )
    op.create_index("ix_fills_intent_id", "fills", ["intent_id"])
    op.create_index("ix_fills_instrument_exec_time_ms", "fills", ["instrument", "exec_time_ms"])
    op.create_table(
        "portfolio_snapshots",
        sa.Column("bar_time_ms", sa.BigInteger, nullable=False),
        *(sa.Column(c, _dec(), nullable=False) for c in (
            "equity", "cash", "realised_pnl", "unrealised_pnl", "fees", "funding", "peak_equity")),
        sa.Column("drawdown", sa.Float, nullable=False),
        sa.Column("positions", _json(), nullable=False),
        _event_id(),
        sa.PrimaryKeyConstraint("bar_time_ms", name="pk_portfolio_snapshots"),
    )
    op.create_table(
        "model_registry",
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("instrument", sa.String(32), nullable=True),
        sa.Column("stage", sa.String(16), nullable=False, server_default="candidate"),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("parent_version", sa.String(64), nullable=True),
        sa.Column("data_hash", sa.String(128), nullable=False),
        sa.Column("features", _json(), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("artifact", sa.LargeBinary, nullable=True),
        sa.Column("artifact_format", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("version", name="pk_model_registry"),
        sa.CheckConstraint("stage IN ('candidate', 'production', 'archived')",
                           name="ck_model_registry_stage"),
    )
    op.create_index("ix_model_registry_kind_instrument_stage", "model_registry",
                    ["kind", "instrument", "stage"])
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False, server_default=""),
        sa.Column("processed_at_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    )
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
    for name in ("processed_events", "model_registry", "portfolio_snapshots", "fills", "orders",
                 "targets", "signals", "regimes", "dvol", "bars"):
        op.drop_table(name)
