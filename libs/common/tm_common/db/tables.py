"""Every table of the project, as SQLAlchemy Core ``Table`` objects on one ``metadata``.

Conventions: times are integer milliseconds since the epoch, UTC, in ``*_ms`` columns (bar times
are the bar's open time); money and quantities are :class:`ExactDecimal`; model outputs (scores,
fractions, probabilities) are floats. Natural keys are primary keys so that every write can be an
idempotent :func:`tm_common.db.upsert.upsert`. ``event_id`` columns hold the event that produced
the row (for tracing). The Alembic migrations under ``migrations/`` create exactly these tables
(``tests/integration/db`` checks that they agree).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tm_common.db.types import ExactDecimal, json_type

# Fixed constraint names: Alembic batch mode (SQLite) and later migrations refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

MODEL_STAGES = ("candidate", "production", "archived")


def _instrument() -> sa.Column[str]:
    return sa.Column("instrument", sa.String(32), nullable=False)


def _event_id() -> sa.Column[str]:
    return sa.Column("event_id", sa.String(64), nullable=True)


def _decimals(*names: str) -> list[sa.Column[Any]]:
    """Required exact-decimal columns (money, prices, quantities), in the order named."""
    return [sa.Column(name, ExactDecimal, nullable=False) for name in names]


def _per_bar(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """A service's output table: one row per ``(instrument, bar_time_ms)`` (its key), then
    ``columns``, then ``event_id``."""
    return sa.Table(
        name, metadata,
        _instrument(),
        sa.Column("bar_time_ms", sa.BigInteger, nullable=False),
        *columns,
        _event_id(),
        sa.PrimaryKeyConstraint("instrument", "bar_time_ms"),
    )


bars = sa.Table(
    "bars", metadata,
    _instrument(),
    sa.Column("interval_min", sa.Integer, nullable=False),
    sa.Column("open_time_ms", sa.BigInteger, nullable=False),
    sa.Column("close_time_ms", sa.BigInteger, nullable=False),
    *_decimals("open", "high", "low", "close", "volume"),
    sa.Column("turnover", ExactDecimal, nullable=True),
    sa.Column("source", sa.String(16), nullable=False, server_default="live"),
    # TimescaleDB requires the time column in every unique index: it is part of the key.
    sa.PrimaryKeyConstraint("instrument", "interval_min", "open_time_ms"),
)

dvol = sa.Table(
    "dvol", metadata,
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("day_ms", sa.BigInteger, nullable=False),
    # The daily value is only known after the day closes; features must filter on this.
    sa.Column("known_at_ms", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("currency", "day_ms"),
)

funding = sa.Table(
    "funding", metadata,
    _instrument(),
    # The settlement time: a rate is known from here on, never earlier.
    sa.Column("settle_time_ms", sa.BigInteger, nullable=False),
    *_decimals("rate"),
    sa.Column("source", sa.String(16), nullable=False, server_default="live"),
    sa.PrimaryKeyConstraint("instrument", "settle_time_ms"),
)

regimes = _per_bar(
    "regimes",
    sa.Column("label", sa.String(16), nullable=False),
    sa.Column("probabilities", json_type(), nullable=False),
    sa.Column("volatility", sa.Float, nullable=False),
    sa.Column("kelly_fraction", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False, server_default=""),
)

signals = _per_bar(
    "signals",
    sa.Column("direction", sa.SmallInteger, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("live_ic", sa.Float, nullable=True),
    sa.Column("model_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("inference_us", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
)

targets = _per_bar(
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

orders = sa.Table(
    "orders", metadata,
    # intent_id is deterministic (same target → same id), so a redelivered intent hits this key.
    sa.Column("intent_id", sa.String(64), nullable=False),
    sa.Column("order_link_id", sa.String(64), nullable=False),
    _instrument(),
    sa.Column("bar_time_ms", sa.BigInteger, nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("order_type", sa.String(8), nullable=False, server_default="Market"),
    sa.Column("qty", ExactDecimal, nullable=False),
    sa.Column("price", ExactDecimal, nullable=True),
    sa.Column("reduce_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("target_qty", ExactDecimal, nullable=True),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("order_id", sa.String(64), nullable=True),
    sa.Column("filled_qty", ExactDecimal, nullable=True),
    sa.Column("avg_price", ExactDecimal, nullable=True),
    sa.Column("ret_code", sa.Integer, nullable=True),
    sa.Column("ret_msg", sa.Text, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=True),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=True),
    _event_id(),
    sa.PrimaryKeyConstraint("intent_id"),
    sa.UniqueConstraint("order_link_id"),
    sa.Index(None, "instrument", "bar_time_ms"),
    sa.Index(None, "status"),
)

fills = sa.Table(
    "fills", metadata,
    sa.Column("exec_id", sa.String(64), nullable=False),
    sa.Column("intent_id", sa.String(64), nullable=False),
    sa.Column("order_link_id", sa.String(64), nullable=False),
    sa.Column("order_id", sa.String(64), nullable=False),
    _instrument(),
    sa.Column("side", sa.String(4), nullable=False),
    *_decimals("qty", "price", "fee"),
    sa.Column("fee_currency", sa.String(8), nullable=False, server_default="USDT"),
    sa.Column("is_maker", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("exec_time_ms", sa.BigInteger, nullable=False),
    _event_id(),
    sa.PrimaryKeyConstraint("exec_id"),
    sa.Index(None, "intent_id"),
    sa.Index(None, "instrument", "exec_time_ms"),
)

portfolio_snapshots = sa.Table(
    "portfolio_snapshots", metadata,
    sa.Column("bar_time_ms", sa.BigInteger, nullable=False),
    *_decimals("equity", "cash", "realised_pnl", "unrealised_pnl", "fees", "funding",
               "peak_equity"),
    sa.Column("drawdown", sa.Float, nullable=False),
    # [{instrument, qty, avg_price, mark_price, unrealised_pnl}] with decimals as strings.
    sa.Column("positions", json_type(), nullable=False),
    _event_id(),
    # cumulative external flows (BalanceReconciled), added by 0005
    sa.Column("transfers", ExactDecimal, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("bar_time_ms"),
)

model_registry = sa.Table(
    "model_registry", metadata,
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # signal | regime | rl
    sa.Column("instrument", sa.String(32), nullable=True),  # None = pooled/base model
    sa.Column("stage", sa.String(16), nullable=False, server_default="candidate"),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("parent_version", sa.String(64), nullable=True),  # transfer-learning base
    sa.Column("data_hash", sa.String(128), nullable=False),
    sa.Column("features", json_type(), nullable=False),
    sa.Column("params", json_type(), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("metrics", json_type(), nullable=False),
    # Safe formats only (xgboost JSON/UBJ, npz, JSON), never pickles: see ARCHITECTURE §7.
    sa.Column("artifact", sa.LargeBinary, nullable=True),
    sa.Column("artifact_format", sa.String(16), nullable=True),
    sa.PrimaryKeyConstraint("version"),
    sa.CheckConstraint(f"stage IN {MODEL_STAGES!r}", name="stage"),
    sa.Index(None, "kind", "instrument", "stage"),
)

processed_events = sa.Table(
    "processed_events", metadata,
    # Keyed by consumer too: several services consume the same event and each must apply it once.
    sa.Column("consumer", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False, server_default=""),
    sa.Column("processed_at_ms", sa.BigInteger, nullable=True),
    sa.PrimaryKeyConstraint("consumer", "event_id"),
)

audit = sa.Table(
    "audit", metadata,
    # Deterministic per fact (e.g. from the command event's id), so a re-handled kill or a row
    # written again after a database outage upserts the same row.
    sa.Column("audit_id", sa.String(64), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    # arming | kill | breaker_trip | breaker_reset | limit_trip | promotion | rollback
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("what", sa.Text, nullable=False),
    sa.Column("why", sa.Text, nullable=False, server_default=""),
    # the admin token's name (and the CLI user it reports), the OS user, or the service
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),   # the program that wrote the row
    _event_id(),                                          # the event that caused it, if any
    sa.PrimaryKeyConstraint("audit_id"),
    sa.Index(None, "kind", "at_ms"),
    sa.Index(None, "at_ms"),
)

ALL_TABLES = (bars, dvol, funding, regimes, signals, targets, orders, fills, portfolio_snapshots,
              model_registry, processed_events, audit)
