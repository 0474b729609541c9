"""The bar clock of the event factories: bar ``i`` (4 h) opens at ``T0_MS + i × 4h`` and every
event about it carries its close as ``ts_event_ns``."""

from __future__ import annotations

H4_MS = 4 * 3600 * 1000
T0_MS = 1_700_000_000_000 // H4_MS * H4_MS        # a 4 h bar boundary (2023-11-14)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def open_ms(i: int) -> int:
    """Bar ``i``'s open time, ms."""
    return T0_MS + i * H4_MS


def close_ns(i: int) -> int:
    """Bar ``i``'s close (= bar ``i + 1``'s open), ns: the bar event's ``ts_event_ns``."""
    return (open_ms(i) + H4_MS) * 1_000_000
