"""Portfolio snapshot: one per bar, after that bar's fills are in."""

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
