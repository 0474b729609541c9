"""The bar as the signal domain sees it: floats for the numerical models, plus envelope timing.

Prices arrive as exact decimals on the bus; the feature and model code works in float64, and
``float(Decimal(s)) == float(s)`` (both are correctly rounded), so a bar from the stream and the
same bar from the history files give bit-identical features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tm_quant.features import BAR_MS, Bar


@dataclass(frozen=True, slots=True)
class BarIn:
    """One closed 4h bar of ``instrument``.

    Attributes:
        open_time_ms: bar open, ms UTC (the bar's identity: ``bar_time_ms`` of its signal).
        open, high, low, close: USDT prices (> 0); volume: base units (>= 0).
        ts_event_ns: the input event's market time (bar close, ns), reused for the signal.
    """

    instrument: str
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ts_event_ns: int

    @property
    def close_ms(self) -> int:
        """End of the bar, ms: side series known at or before this instant may be used."""
        return self.open_time_ms + BAR_MS

    def as_bar(self) -> Bar:
        return Bar(self.open_time_ms, self.open, self.high, self.low, self.close, self.volume)

    def to_list(self) -> list[Any]:
        """JSON-able form for the handler snapshot (floats round-trip exactly through JSON)."""
        return [self.instrument, self.open_time_ms, self.open, self.high, self.low, self.close,
                self.volume, self.ts_event_ns]

    @classmethod
    def from_list(cls, v: list[Any]) -> BarIn:
        return cls(str(v[0]), int(v[1]), float(v[2]), float(v[3]), float(v[4]), float(v[5]),
                   float(v[6]), int(v[7]))
