"""A deterministic, stateful handler for delivery tests: one output per input whose
``confidence`` is the running count of inputs handled. Outputs numbered 1..N with no gap or
repeat prove that state and outputs were committed atomically, exactly once per input."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import cast

from tm_common.bus import Emit
from tm_common.events import BarClosed, Envelope, SignalGenerated


class CountingHandler:
    def __init__(self, out_stream: str = "test.out", *, sleep_s: float = 0.0,
                 hook: Callable[[Envelope, int], None] | None = None) -> None:
        self.out_stream, self.sleep_s, self.hook = out_stream, sleep_s, hook
        self.n = 0

    async def handle(self, event: Envelope) -> Sequence[Emit]:
        self.n += 1
        if self.hook is not None:
            self.hook(event, self.n)
        if self.sleep_s:
            await asyncio.sleep(self.sleep_s)
        b = cast(BarClosed, event.body)          # fed bars only
        return [Emit(self.out_stream, SignalGenerated(
            instrument=b.instrument, bar_time_ms=b.open_time_ms, direction=1, probability=0.5,
            confidence=float(self.n), reason=str(b.close)))]

    def snapshot(self) -> bytes:
        return str(self.n).encode()

    def restore(self, data: bytes | None) -> None:
        self.n = int(data) if data else 0
