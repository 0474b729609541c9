"""The forming (unconfirmed) bar: what Bybit shows of a 4h bar before it closes, simulated from
closed bars (pure: values in, bars out).

The venue's clock moves a whole bar at a time (history: ``POST /sim/clock``; live: each pushed
bar), so a bar's inside is never traded. What a subscriber sees of it is replayed when the bar
closes, before its confirmed push:

- ``substeps - 1`` partial bars at fractions ``k / substeps`` of the bar (``confirm=false``,
  ``ts`` = the sub-step's time), then the closed bar (``confirm=true``, ``ts`` = its close);
  then the next bar as it opens (``confirm=false``, fraction 0: open = high = low = close,
  volume 0, ``ts`` = its start). ``substeps = 1`` sends the confirmed bar only.
- A partial bar follows the usual OHLC path: open -> low -> high -> close for a bar that closes
  at or above its open, open -> high -> low -> close otherwise, each leg a third of the bar's
  time, prices linear along a leg and rounded to the tick (kept inside the bar's range); high
  and low are the extremes reached so far, volume the elapsed share of the bar's volume.
- The next bar's open is the next history bar's open when there is one (its first trade, known
  at that instant), else the last close (the live feed, the end of the history, a gap).

REST ``/v5/market/kline`` answers the bar forming at the venue's time first, as Bybit does: the
opening bar above (start = the venue's time).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from tm_common.history import BAR_INTERVAL_MS, HistoryBar

LEGS = 3


def _text(value: Decimal) -> str:
    return format(value, "f")


def opening_bar(open_time_ms: int, price: str) -> HistoryBar:
    """A bar at its first instant: every price ``price``, no volume."""
    return HistoryBar(open_time_ms=open_time_ms, open=price, high=price, low=price, close=price,
                      volume="0")


def partial_bar(bar: HistoryBar, fraction: Fraction, tick: Decimal) -> HistoryBar:
    """``bar`` as it stood ``fraction`` (0 <= f < 1) of the way through, on the path above."""
    o, h, lo, c = (Decimal(x) for x in (bar.open, bar.high, bar.low, bar.close))
    path = [o, lo, h, c] if c >= o else [o, h, lo, c]
    at = fraction * LEGS
    leg = min(int(at), LEGS - 1)
    t = at - leg
    start, stop = path[leg], path[leg + 1]
    raw = start + (stop - start) * Decimal(t.numerator) / Decimal(t.denominator)
    price = min(max(raw.quantize(tick, rounding=ROUND_HALF_EVEN) if tick > 0 else raw, lo), h)
    visited = [*path[:leg + 1], price]
    volume = Decimal(bar.volume)
    share = (volume * Decimal(fraction.numerator) / Decimal(fraction.denominator))
    places = volume.as_tuple().exponent
    if isinstance(places, int) and places < 0:       # keep the volume's own decimals
        share = share.quantize(Decimal(1).scaleb(places))
    return HistoryBar(open_time_ms=bar.open_time_ms, open=bar.open,
                      high=_text(max(visited)), low=_text(min(visited)), close=_text(price),
                      volume=_text(share))


def formation(bar: HistoryBar, substeps: int, tick: Decimal,
              next_open: str | None) -> list[tuple[int, HistoryBar, bool]]:
    """Every kline push of ``bar`` closing, in order: ``(ts_ms, bar, confirm)`` (see above)."""
    if substeps < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps}")
    out = [(bar.open_time_ms + BAR_INTERVAL_MS * k // substeps,
            partial_bar(bar, Fraction(k, substeps), tick), False) for k in range(1, substeps)]
    close_ms = bar.open_time_ms + BAR_INTERVAL_MS
    out.append((close_ms, bar, True))
    if substeps > 1:
        out.append((close_ms, opening_bar(close_ms, next_open or bar.close), False))
    return out
