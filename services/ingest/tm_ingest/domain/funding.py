"""Pure funding-rate bookkeeping: parsing venue rows and the newest settle time per instrument.

A settled rate is identified by ``(instrument, settle_time_ms)`` and known from its settle time,
never earlier. The publisher remembers the newest settle time published per instrument; a rate
at or before it is not published again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from tm_common.errors import PermanentError
from tm_common.events import FundingRateUpdated

#: A rate beyond ±10 % per interval is not a funding rate (Bybit caps them far lower).
MAX_ABS_RATE = Decimal("0.1")


class BadFunding(PermanentError, ValueError):
    """A venue row that is not a valid settled funding rate (permanent: the same row stays bad);
    the message says why."""


def make_funding(instrument: str, settle_time_ms: Any, rate: Any, *,
                 source: str) -> FundingRateUpdated:
    """Validate and build a :class:`FundingRateUpdated` (rate an exact Decimal of its text)."""
    try:
        t = int(settle_time_ms)
        r = Decimal(str(rate))
    except (InvalidOperation, TypeError, ValueError, OverflowError) as e:
        raise BadFunding(f"{instrument}: non-numeric funding row {settle_time_ms!r}/{rate!r}") from e
    if t <= 0:
        raise BadFunding(f"{instrument}: settle time {t} is not a positive ms timestamp")
    if not r.is_finite() or abs(r) > MAX_ABS_RATE:
        raise BadFunding(f"{instrument}@{t}: funding rate {rate!r} out of range")
    return FundingRateUpdated(instrument=instrument, settle_time_ms=t, rate=r,
                              source=source)  # type: ignore[arg-type]


def funding_from_rest_row(instrument: str, row: Any, source: str = "live") -> FundingRateUpdated:
    """Bybit V5 ``/v5/market/funding/history`` row: {symbol, fundingRate, fundingRateTimestamp}."""
    if not isinstance(row, Mapping):
        raise BadFunding(f"{instrument}: funding row is not an object")
    if row.get("symbol") not in (None, instrument):
        raise BadFunding(f"{instrument}: funding row for another symbol {row.get('symbol')!r}")
    try:
        return make_funding(instrument, row["fundingRateTimestamp"], row["fundingRate"],
                            source=source)
    except KeyError as e:
        raise BadFunding(f"{instrument}: funding row lacks {e}") from e


def new_rates(rates: Iterable[FundingRateUpdated],
              last: dict[str, int]) -> list[FundingRateUpdated]:
    """The rates newer than ``last[instrument]``, oldest first, each once; advances ``last``."""
    fresh = []
    for f in sorted(rates, key=lambda f: (f.settle_time_ms, f.instrument)):
        if f.settle_time_ms > last.get(f.instrument, -1):
            last[f.instrument] = f.settle_time_ms
            fresh.append(f)
    return fresh
