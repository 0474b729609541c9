"""Stale side inputs: what a prediction may use of DVOL and funding, and what a stale one costs.

A side input (``"dvol"``: BTC DVOL, ``"funding"``: the instrument's settled funding rate) is a
series of values, each usable from its known-at time (:mod:`.asof`). At a bar's close its *age* is
``close_ms - known_at_ms`` of the newest value known then. For each side input that the
instrument's model reads (:attr:`~tm_signal.domain.model.InstrumentModel.side_inputs`), the input
is **stale** when nothing is known yet or its age exceeds the configured maximum
(``TM_SIGNAL_DVOL_MAX_AGE_S``, default 2 days; ``TM_SIGNAL_FUNDING_MAX_AGE_S``, default 1 day =
three missed 8-hourly settlements). Ages are market time (bar close), never the wall clock, so a
replay and a live run judge alike.

The rule for a stale input (per bar, per instrument):

1. **Withheld**: the features it feeds (``dvol_level, dvol_chg_6, dvol_rv_spread``;
   ``funding_rate, funding_mean_18, funding_mean_42``) are NaN in the row given to the model,
   exactly as the trainer presents a missing input, never the old value. The incremental feature
   state itself carries the last value forward as the trainer's batch path does on the same data,
   so once the input is fresh again the row equals the trainer's row at once.
2. **Confidence**: multiplied by ``TM_SIGNAL_STALE_CONFIDENCE_FRACTION`` (default 0.5) once per
   stale input: one stale input halves it, two quarter it; 0 forces the signal flat (direction 0,
   the sizer's cascade then falls to FLAT). ``TM_SIGNAL_MIN_CONFIDENCE`` applies after the cut.
3. **Reported**: the signal's reason names it (``stale dvol (age 2.4 d > 2.0 d)``), the gauges
   ``tm_signal_stale_input{input,instrument}`` (0/1) and ``tm_signal_input_age_seconds`` show it,
   and ``/readyz`` fails its ``inputs`` check with the same words (the mesh keeps running: see
   ``services/signal/README.md``).

A model that reads neither input is never judged stale, whatever the feeds do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from tm_quant.features import FEATURE_NAMES

from tm_signal.domain.model import SIDE_INPUT_FEATURES

DAY_MS = 86_400_000
_INDEX = {n: j for j, n in enumerate(FEATURE_NAMES)}
_COLUMNS = {k: np.array(sorted(_INDEX[n] for n in names), dtype=np.intp)
            for k, names in SIDE_INPUT_FEATURES.items()}


@dataclass(frozen=True)
class InputAge:
    """One side input as of a bar's close: ``age_ms`` None = nothing known yet (stale)."""

    name: str
    age_ms: int | None
    max_age_ms: int

    @property
    def stale(self) -> bool:
        return self.age_ms is None or self.age_ms > self.max_age_ms

    def describe(self) -> str:
        """``"stale dvol (age 2.4 d > 2.0 d)"`` / ``"stale funding (none known)"``."""
        if self.age_ms is None:
            return f"stale {self.name} (none known)"
        return f"stale {self.name} (age {self.age_ms / DAY_MS:.1f} d > {self.max_age_ms / DAY_MS:.1f} d)"

    def to_list(self) -> list[object]:
        return [self.name, self.age_ms, self.max_age_ms]

    @classmethod
    def from_list(cls, x: list[object]) -> InputAge:
        name, age, mx = x
        return cls(str(name), None if age is None else int(str(age)), int(str(mx)))


def assess(used: tuple[str, ...], close_ms: int, known_at_ms: Mapping[str, int | None],
           max_age_ms: Mapping[str, int]) -> tuple[InputAge, ...]:
    """The age of every input in ``used`` at ``close_ms``; ``known_at_ms``: input → known-at time
    of its newest value known at the close (None = none)."""
    out = []
    for name in used:
        k = known_at_ms.get(name)
        out.append(InputAge(name, None if k is None else close_ms - k, max_age_ms[name]))
    return tuple(out)


def withhold(row: np.ndarray, ages: tuple[InputAge, ...]) -> np.ndarray:
    """``row`` with the features of every stale input set to NaN (a copy when any is stale)."""
    stale = [a.name for a in ages if a.stale]
    if not stale:
        return row
    row = row.copy()
    for name in stale:
        row[_COLUMNS[name]] = np.nan
    return row


def confidence_cut(confidence: float, ages: tuple[InputAge, ...], fraction: float) -> float:
    """``confidence * fraction ** (number of stale inputs)``."""
    n = sum(1 for a in ages if a.stale)
    return confidence * fraction ** n if n else confidence
