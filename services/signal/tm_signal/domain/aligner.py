"""Cross-instrument ordering within one bar time: BTC first, whatever the arrival order.

ETH and SOL features use the BTC bar of the same open time (``btc_ret_1``, ``beta_btc_42``, ...).
The bus gives no order between instruments of one bar time, so a non-BTC bar that arrives before
its BTC bar is *buffered* and processed right after the BTC bar of its time. If a bar of a later
time arrives first (of any instrument), the BTC bar of the buffered time is taken as missing (a gap
in BTC's data): the buffered bars are processed then, with the BTC close carried forward, which
is also what the trainer's as-of join does. No wall clock is involved, so the outcome depends only
on the bars, never on their order within a bar time.

In lockstep replay every bar of time t is published before any bar of t + 1, so a buffered bar is
always released within its own bar time. Live, a missing BTC bar delays the ETH/SOL signals of that
time until the next bar (their reason says so); ingest's backfill normally prevents that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tm_signal.domain.bars import BarIn

BTC_MISSING = "btc bar missing: BTC close carried forward"


@dataclass(frozen=True, slots=True)
class Schedule:
    """What one incoming bar causes: ``ready`` bars to process now, in this order, each with a
    note; the new ``buffer``; ``dropped`` = why the bar was ignored ("" when it was not)."""

    ready: tuple[tuple[BarIn, str], ...]
    buffer: tuple[BarIn, ...]
    dropped: str = ""


def _key(b: BarIn) -> tuple[int, str]:
    return b.open_time_ms, b.instrument


def schedule(bar: BarIn, buffer: Sequence[BarIn], last_ms: dict[str, int],
             symbols: Sequence[str], btc: str | None) -> Schedule:
    """Decide what to process for ``bar`` (pure; the caller applies the result).

    Args:
        bar: the incoming bar.
        buffer: non-BTC bars waiting for their BTC bar.
        last_ms: open time of the last processed bar per instrument.
        symbols: configured instruments (others are dropped).
        btc: the cross-asset instrument, or None when cross features are not used (no buffering).
    """
    inst, t = bar.instrument, bar.open_time_ms
    if inst not in symbols:
        return Schedule((), tuple(buffer), f"instrument {inst} not configured")
    if t <= last_ms.get(inst, -1) or any(b.instrument == inst and b.open_time_ms >= t
                                         for b in buffer):
        return Schedule((), tuple(buffer), "duplicate or late bar")
    stale = sorted((b for b in buffer if b.open_time_ms < t), key=_key)
    keep = [b for b in buffer if b.open_time_ms >= t]
    ready: list[tuple[BarIn, str]] = [(b, BTC_MISSING) for b in stale]
    if btc is None or btc not in symbols or inst == btc or last_ms.get(btc, -1) >= t:
        ready.append((bar, ""))
        if inst == btc:
            now = sorted((b for b in keep if b.open_time_ms <= t), key=_key)
            ready.extend((b, "") for b in now)
            keep = [b for b in keep if b.open_time_ms > t]
    else:
        keep.append(bar)
    return Schedule(tuple(ready), tuple(sorted(keep, key=_key)))
