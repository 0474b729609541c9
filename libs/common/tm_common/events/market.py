"""Market data events: closed bars, funding rates, Deribit DVOL and intra-bar marks."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from tm_common.events.base import EventBody, register


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
class FundingRateUpdated(EventBody, frozen=True, kw_only=True):
    """A perpetual's settled funding rate (Bybit ``/v5/market/funding/history``): ``rate`` is the
    decimal rate per funding interval, settled and known from ``settle_time_ms`` (ms UTC)."""

    TYPE = "funding.rate"
    SCHEMA_VERSION = 1

    instrument: str
    settle_time_ms: int
    rate: Decimal
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
