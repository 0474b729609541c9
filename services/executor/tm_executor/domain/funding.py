"""Which span of the venue's funding executions a funding bar asks for (pure).

Bybit's ``/v5/execution/list`` answers at most 7 days per query (``startTime`` only = 7 days
from it; both = at most 7 days apart; neither = the last 7 days). The executor asks on every
bar that closes on a funding time, per instrument, for what it has not seen yet:

- from just after the newest settlement it published (``since``), so a settlement missed once
  (executor down, venue slow) is caught at the next funding bar;
- but never from further back than :data:`LATE_MS` before its previous look-up (``asked``):
  after a flat week ``since`` is old, and asking from it would be an ever-longer walk of empty
  windows (or, with ``startTime`` alone, the same empty 7 days again, so the next settlement
  would never be seen). The overlap finds a row the venue booked after that look-up;
- the first look-up of an instrument (neither known) covers the venue's default last 7 days.

:func:`windows` cuts the span into queries Bybit accepts.
"""

from __future__ import annotations

DAY_MS = 24 * 3600 * 1000
#: Bybit's widest ``execution/list`` window (``endTime - startTime <= 7 days``).
WINDOW_MS = 7 * DAY_MS
#: How far behind the previous look-up a funding bar asks again.
LATE_MS = DAY_MS


def span_start(since_ms: int | None, asked_ms: int | None, now_ms: int) -> int:
    """The first funding time (ms, inclusive) a look-up at ``now_ms`` asks for, given the newest
    settlement published (``since_ms``) and the previous look-up's end (``asked_ms``)."""
    starts = []
    if since_ms is not None:
        starts.append(since_ms + 1)
    if asked_ms is not None:
        starts.append(asked_ms - LATE_MS)
    return max(starts, default=now_ms - WINDOW_MS)


def windows(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """``[start, end]`` (inclusive, ms) as consecutive queries of at most :data:`WINDOW_MS`;
    none when it is empty (``end < start``: everything up to ``end`` is published)."""
    out = []
    lo = start_ms
    while lo <= end_ms:
        hi = min(lo + WINDOW_MS, end_ms)
        out.append((lo, hi))
        lo = hi + 1
    return out
