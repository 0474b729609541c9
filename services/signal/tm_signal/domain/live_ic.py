"""Rolling live information coefficient of one instrument's published predictions.

A prediction ``p`` made at bar i matures at bar ``i + h`` (``h`` = the model's horizon in bars,
counted in the instrument's own bar sequence like the trainer's labels), when its realised forward
log return ``ln(close_{i+h} / close_i)`` becomes known. The live IC is the Spearman correlation of
``p`` with that return over the last ``window`` matured predictions; it only uses returns known at
the current bar's close (no look-ahead). The correlation is :func:`tm_quant.ic.spearman`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from tm_quant.ic import average_ranks, spearman

__all__ = ["LiveIC", "average_ranks", "spearman"]


class LiveIC:
    """Args: ``window`` matured pairs kept (default 60); ``min_pairs`` before a value is given."""

    def __init__(self, window: int = 60, min_pairs: int = 20) -> None:
        self.window, self.min_pairs = window, min_pairs
        self.n_bars = 0
        self.pending: list[tuple[int, float, float]] = []   # (due bar count, ln close, p)
        self.pairs: deque[tuple[float, float]] = deque(maxlen=window)
        self._value: float | None = None

    def on_bar(self, close: float) -> None:
        """Count one bar of the instrument and mature the predictions due now."""
        self.n_bars += 1
        if not self.pending:
            return
        lc = math.log(close)
        due = [x for x in self.pending if x[0] <= self.n_bars]
        if due:
            self.pending = [x for x in self.pending if x[0] > self.n_bars]
            for _, lc0, p in due:
                self.pairs.append((p, lc - lc0))
            self._value = self._compute()

    def add(self, p: float, close: float, horizon_bars: int) -> None:
        """Record the prediction made at the current bar (after :meth:`on_bar`)."""
        self.pending.append((self.n_bars + horizon_bars, math.log(close), float(p)))

    @property
    def n(self) -> int:
        """Matured predictions behind :attr:`value` (0 while it is None)."""
        return 0 if self._value is None else len(self.pairs)

    @property
    def value(self) -> float | None:
        """Spearman IC in [-1, 1], or None with fewer than ``min_pairs`` pairs or no dispersion."""
        return self._value

    def _compute(self) -> float | None:
        if len(self.pairs) < self.min_pairs:
            return None
        a = np.array(self.pairs, dtype=np.float64)
        ic = spearman(a[:, 0], a[:, 1])
        return None if math.isnan(ic) else ic

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n_bars, "pending": [list(x) for x in self.pending],
                "pairs": [list(x) for x in self.pairs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], window: int = 60, min_pairs: int = 20) -> LiveIC:
        ic = cls(window, min_pairs)
        ic.n_bars = int(d["n"])
        ic.pending = [(int(a), float(b), float(c)) for a, b, c in d["pending"]]
        ic.pairs.extend((float(a), float(b)) for a, b in d["pairs"])
        ic._value = ic._compute()
        return ic
