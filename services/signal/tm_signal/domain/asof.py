"""Side series (DVOL, funding) that become usable at a known-at time, looked up as of a bar close.

Same rule as the trainer's :func:`tm_quant.features.align.asof`: a value may be used by a bar when
``known_at_ms <= bar close``; the latest such value wins, later ties replace earlier ones.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from typing import Any


class KnownValues:
    """A sorted store of ``(known_at_ms, value)``, pruned as bars go by.

    Points may arrive before they are usable (a burst of history, a value announced early); they
    wait here until a bar closes at or after their known-at time. :meth:`prune` drops what no
    future bar can use any more, so in steady state the store holds one or two points.

    Args:
        keep: hard cap on stored points (default 4096, ~11 years of daily DVOL); the oldest go.
    """

    def __init__(self, keep: int = 4096) -> None:
        self.keep = keep
        self._points: list[tuple[int, float]] = []

    def __len__(self) -> int:
        return len(self._points)

    def add(self, known_at_ms: int, value: float) -> None:
        """Insert a point (a repeated ``known_at_ms`` replaces the old value)."""
        i = bisect_right(self._points, (known_at_ms, float("inf")))
        if i and self._points[i - 1][0] == known_at_ms:
            self._points[i - 1] = (known_at_ms, float(value))
        else:
            insort(self._points, (int(known_at_ms), float(value)))
        if len(self._points) > self.keep:
            del self._points[: len(self._points) - self.keep]

    def asof(self, t_ms: int) -> float | None:
        """The newest value known at ``t_ms`` (inclusive), or None if none is known yet."""
        p = self.point(t_ms)
        return None if p is None else p[1]

    def point(self, t_ms: int) -> tuple[int, float] | None:
        """``(known_at_ms, value)`` of the newest point known at ``t_ms`` (inclusive), or None."""
        i = bisect_right(self._points, (t_ms, float("inf")))
        return self._points[i - 1] if i else None

    def prune(self, t_ms: int) -> None:
        """Forget points superseded at ``t_ms``: every point older than the newest one known at
        ``t_ms`` (bars closing at or after ``t_ms`` can no longer need them)."""
        i = bisect_right(self._points, (t_ms, float("inf")))
        if i > 1:
            del self._points[: i - 1]

    def to_list(self) -> list[list[float]]:
        return [[k, v] for k, v in self._points]

    @classmethod
    def from_list(cls, data: list[Any], keep: int = 4096) -> KnownValues:
        kv = cls(keep)
        for k, v in data:
            kv.add(int(k), float(v))
        return kv
