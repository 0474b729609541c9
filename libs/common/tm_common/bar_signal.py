"""A signal as the pure domains pass it on: the direction and probability for one instrument's
bar, the fields of ``signal.generated`` that a decision reads (:mod:`tm_common.events.signals`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BarSignal:
    """``direction`` in {-1, 0, 1}; ``probability`` of an up move and ``confidence`` ``|2p - 1|``,
    both in [0, 1]; ``live_ic``: the live information coefficient (``None`` until enough
    predictions matured); ``ts_event_ns``: the bar's close, ns; ``live_ic_n``: how many matured
    predictions the live IC is computed over (its significance depends on it)."""

    instrument: str
    bar_time_ms: int
    direction: int
    probability: float
    confidence: float
    live_ic: float | None
    ts_event_ns: int
    live_ic_n: int = field(default=0, kw_only=True)
