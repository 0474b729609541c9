"""Pure bar bookkeeping: parsing venue rows, exactly-once decisions and gap detection.

A bar is identified by ``(instrument, open_time_ms)``. The tracker remembers the newest bar
published per instrument; a bar at or before it is a duplicate or late and is not published again.
Bars must be on the interval grid; anything else is rejected with a reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from tm_common.events import BarClosed

INTERVAL_MIN = 240
INTERVAL_MS = INTERVAL_MIN * 60_000


class BadBar(ValueError):
    """A venue row that is not a valid bar; the message says why."""


def make_bar(instrument: str, open_time_ms: int, o: Any, h: Any, low: Any, c: Any, v: Any, *,
             source: str, interval_ms: int = INTERVAL_MS) -> BarClosed:
    """Validate and build a :class:`BarClosed` (prices as exact Decimals from their text)."""
    try:
        t = int(open_time_ms)
        op, hi, lo, cl, vol = (Decimal(str(x)) for x in (o, h, low, c, v))
    except (InvalidOperation, TypeError, ValueError, OverflowError) as e:   # int(inf): Overflow
        raise BadBar(f"{instrument}: non-numeric field in bar {open_time_ms!r}: {e}") from e
    if t % interval_ms:
        raise BadBar(f"{instrument}: open time {t} is not on the {interval_ms // 60000}m grid")
    if not all(x.is_finite() for x in (op, hi, lo, cl, vol)):
        raise BadBar(f"{instrument}@{t}: non-finite value")
    if min(op, hi, lo, cl) <= 0 or vol < 0:
        raise BadBar(f"{instrument}@{t}: non-positive price or negative volume")
    if lo > min(op, cl) or hi < max(op, cl):
        raise BadBar(f"{instrument}@{t}: high/low inconsistent with open/close")
    return BarClosed(instrument=instrument, interval_min=interval_ms // 60_000, open_time_ms=t,
                     close_time_ms=t + interval_ms - 1, open=op, high=hi, low=lo, close=cl,
                     volume=vol, source=source)  # type: ignore[arg-type]


def from_rest_row(instrument: str, row: Sequence[Any]) -> BarClosed:
    """Bybit V5 ``/v5/market/kline`` row: [startTime, open, high, low, close, volume, turnover]."""
    if not isinstance(row, (list, tuple)) or len(row) < 6:
        raise BadBar(f"{instrument}: kline row has {len(row) if isinstance(row, (list, tuple)) else 'no'} fields")
    return make_bar(instrument, row[0], row[1], row[2], row[3], row[4], row[5], source="backfill")


def from_ws_kline(instrument: str, d: Mapping[str, Any]) -> BarClosed:
    """Bybit V5 public ``kline.240.<symbol>`` data item (only call for ``confirm: true``)."""
    try:
        return make_bar(instrument, d["start"], d["open"], d["high"], d["low"], d["close"],
                        d["volume"], source="live")
    except KeyError as e:
        raise BadBar(f"{instrument}: kline message lacks {e}") from e


class Decision(StrEnum):
    PUBLISH = "publish"
    DUPLICATE = "duplicate"     # the same open time again
    LATE = "late"               # older than the newest published


@dataclass
class BarTracker:
    """Newest published open time per instrument (persisted by the caller)."""

    last: dict[str, int]
    interval_ms: int = INTERVAL_MS

    def decide(self, bar: BarClosed) -> Decision:
        prev = self.last.get(bar.instrument)
        if prev is None or bar.open_time_ms > prev:
            return Decision.PUBLISH
        return Decision.DUPLICATE if bar.open_time_ms == prev else Decision.LATE

    def mark(self, bar: BarClosed) -> None:
        self.last[bar.instrument] = max(bar.open_time_ms, self.last.get(bar.instrument, 0))

    def missing_before(self, bar: BarClosed) -> list[int]:
        """Open times between the newest published bar and ``bar`` (a gap), oldest first."""
        prev = self.last.get(bar.instrument)
        if prev is None:
            return []
        return list(range(prev + self.interval_ms, bar.open_time_ms, self.interval_ms))


def order_and_dedupe(bars: Iterable[BarClosed]) -> list[BarClosed]:
    """Bars sorted by open time with repeats removed (REST pages come newest first and overlap)."""
    seen: dict[tuple[str, int], BarClosed] = {}
    for b in bars:
        seen.setdefault((b.instrument, b.open_time_ms), b)
    return sorted(seen.values(), key=lambda b: (b.open_time_ms, b.instrument))


def grid_gaps(times: Sequence[int], interval_ms: int = INTERVAL_MS) -> list[tuple[int, int]]:
    """``(first_missing, last_missing)`` open-time ranges inside a sorted sequence of open times."""
    out = []
    for a, b in zip(times, times[1:]):
        if b - a > interval_ms:
            out.append((a + interval_ms, b - interval_ms))
    return out
