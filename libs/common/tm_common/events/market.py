"""Market data events: closed bars, funding rates, Deribit DVOL, intra-bar marks, and the
venue's instrument filters when they change."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tm_common.events.base import EventBody, FundingEventBody, register
from tm_common.instruments import TRADING


@register
class BarClosed(EventBody, frozen=True, kw_only=True):
    """A closed (confirmed) kline. Times are the bar's open and close in ms UTC."""

    TYPE = "bar.closed"
    SCHEMA_VERSION = 1

    instrument: str
    interval_min: int = 240
    open_time_ms: int
    close_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    source: Literal["live", "backfill", "replay"] = "live"


@register
class DvolUpdated(EventBody, frozen=True, kw_only=True):
    """Deribit DVOL daily close for ``day_ms``; only known from ``known_at_ms`` (day + 1 d)."""

    TYPE = "dvol.updated"
    SCHEMA_VERSION = 1

    currency: str
    day_ms: int
    known_at_ms: int
    value: float


@register
class FundingRateUpdated(FundingEventBody, frozen=True, kw_only=True):
    """A perpetual's settled funding rate (Bybit ``/v5/market/funding/history``): ``rate`` is the
    decimal rate per funding interval, settled and known from ``settle_time_ms`` (ms UTC)."""

    TYPE = "funding.rate"
    SCHEMA_VERSION = 1

    source: Literal["live", "backfill", "replay"] = "live"


@register
class MarkUpdated(EventBody, frozen=True, kw_only=True):
    """An intra-bar mark of a perpetual from the public ticker (Bybit ``GET /v5/market/tickers``):
    ``mark_price`` is the venue's ``markPrice`` (its ``lastPrice`` when it sends no mark),
    ``last_price`` its ``lastPrice`` if sent, both USDT; ``at_ms`` (ms UTC) the venue's answer
    time. Marks value the book between bar closes only (``portfolio.valued``); they are never a
    bar and never enter the 4h snapshots."""

    TYPE = "mark.updated"
    SCHEMA_VERSION = 1

    instrument: str
    at_ms: int
    mark_price: Decimal
    last_price: Decimal | None = None
    source: Literal["live", "replay"] = "live"


class InstrumentFilters(msgspec.Struct, frozen=True, kw_only=True):
    """One linear perpetual's lot and price filters as the venue answered them
    (``/v5/market/instruments-info``; quantities in the base coin, ``min_notional`` in USDT),
    its delisting time (``deliveryTime``, ms UTC; 0 = none scheduled) and its ``status``
    (``Trading``; ``Delivering`` or ``Closed`` when delisted; ``PreLaunch`` before launch)."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    max_mkt_order_qty: Decimal
    min_notional: Decimal
    delivery_time_ms: int = 0
    status: str = TRADING


@register
class InstrumentsChanged(EventBody, frozen=True, kw_only=True):
    """The venue changed the filters of traded instruments (the executor's refresh of
    instruments-info found a difference): ``instruments`` are the new filters of the symbols
    that changed, ``changes`` says what changed per symbol (``"qty_step 0.001→0.01"``), at
    ``checked_at_ms`` (the venue's clock)."""

    TYPE = "instruments.changed"
    SCHEMA_VERSION = 1

    source: str
    checked_at_ms: int
    instruments: list[InstrumentFilters]
    changes: dict[str, str] = {}
