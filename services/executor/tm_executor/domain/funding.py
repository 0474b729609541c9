"""Which bars ask the venue for funding, and which span of its funding executions they ask
for (pure).

Bybit settles funding at every multiple of the instrument's funding interval (its
instruments-info ``fundingInterval``: 8 h for BTC, ETH and SOL, 1, 2 or 4 h for others), on
the UTC clock. A bar asks when a funding time falls inside it (:func:`settles_in_bar`): with
an 8 h interval every second 4 h bar, with 4 h or less every bar.

Bybit's ``/v5/execution/list`` answers at most 7 days per query (``startTime`` only = 7 days
from it; both = at most 7 days apart; neither = the last 7 days). A funding bar asks, per
instrument, for what it has not seen yet:

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


def settles_in_bar(open_ms: int, close_ms: int, interval_ms: int) -> bool:
    """Whether a funding time (a multiple of ``interval_ms`` since the epoch) lies in
    ``(open_ms, close_ms]``: the bar that closes at or after a settlement asks for it, and a
    settlement at a bar's open belongs to the bar before."""
    if interval_ms <= 0:
        raise ValueError(f"funding interval must be > 0 ms, got {interval_ms}")
    return close_ms // interval_ms > open_ms // interval_ms


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
