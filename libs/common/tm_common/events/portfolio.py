"""Portfolio snapshot: one per bar, after that bar's fills are in; and intra-bar valuations."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tm_common.events.base import EventBody, register


class PositionView(msgspec.Struct, frozen=True, kw_only=True):
    instrument: str
    qty: Decimal
    avg_price: Decimal
    mark_price: Decimal
    unrealised_pnl: Decimal


@register
class PortfolioSnapshotted(EventBody, frozen=True, kw_only=True):
    """Equity and positions after bar ``bar_time_ms`` (all money in USDT)."""

    TYPE = "portfolio.snapshotted"
    SCHEMA_VERSION = 1

    bar_time_ms: int
    equity: Decimal
    cash: Decimal
    realised_pnl: Decimal
    unrealised_pnl: Decimal
    fees: Decimal
    funding: Decimal
    peak_equity: Decimal
    drawdown: float
    positions: tuple[PositionView, ...] = ()
    #: Cumulative external flows booked (``BalanceReconciled``; > 0 in): cash includes them,
    #: PnL does not. Risk rescales its peaks when this total changes.
    transfers: Decimal = Decimal(0)


@register
class PortfolioValued(EventBody, frozen=True, kw_only=True):
    """An intra-bar valuation (all money in USDT): the book at ``at_ms`` (ms UTC) with each
    position marked at its newest intra-bar mark (``mark.updated``; a position with none newer
    than its last bar close keeps that close). ``peak_equity`` is the highest *snapshot* equity
    (bar closes only: a valuation never moves it) and ``drawdown`` = 1 − equity / peak.
    ``after_bar_ms``: the bar time of the newest snapshot before it (None before the first);
    ``mark_instrument``: whose mark caused it. Published on ``portfolio.valuation``, never on
    ``portfolio.snapshot``: the per-bar accounting does not see it."""

    TYPE = "portfolio.valued"
    SCHEMA_VERSION = 1

    at_ms: int
    equity: Decimal
    unrealised_pnl: Decimal
    peak_equity: Decimal
    drawdown: float
    after_bar_ms: int | None = None
    mark_instrument: str = ""
    positions: tuple[PositionView, ...] = ()
    transfers: Decimal = Decimal(0)     # as on PortfolioSnapshotted
