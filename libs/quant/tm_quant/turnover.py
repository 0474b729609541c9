"""Positions that keep turnover within a stated budget: hysteresis plus a minimum holding time.

Re-deciding a 1-day label every 4 h bar flips the position whenever P(up) wobbles around 0.5,
and the costs of those flips can exceed the whole gross edge. Two smoothers, both causal (bar t's
position uses P(up) up to bar t only):

- **hysteresis** (``band`` ≥ 0): go long when ``p > 0.5 + band``, short when ``p < 0.5 - band``,
  otherwise keep the position held (a missing ``p`` keeps it too);
- **minimum holding** (``hold_bars`` ≥ 1): after a change the position is kept at least
  ``hold_bars`` bars.

A budget of ``B`` units of turnover a year (a flip long → short is 2 units, an entry 1) is met by
construction with ``hold_bars = ceil(2 × bars_per_year / B)`` (:func:`hold_bars_for`): at most
one change every ``hold_bars`` bars, each at most 2 units, so over ``n`` bars at most
``B + 2 × bars_per_year / n`` units a year (the last term: one change more than the average
allows, negligible over a walk-forward), whatever the predictions.
:func:`turnover_per_year` measures what a run used.
"""

from __future__ import annotations

import math

import numpy as np

from tm_quant.features import BARS_PER_YEAR


def hold_bars_for(budget_per_year: float, bars_per_year: int = BARS_PER_YEAR) -> int:
    """The fewest bars between changes that keep turnover ≤ ``budget_per_year`` units (> 0)."""
    if not (math.isfinite(budget_per_year) and budget_per_year > 0):
        raise ValueError(f"turnover budget must be a positive number of units a year, got "
                         f"{budget_per_year}")
    return max(1, math.ceil(2 * bars_per_year / budget_per_year))


def smoothed_positions(p: np.ndarray, *, band: float = 0.0, hold_bars: int = 1) -> np.ndarray:
    """Positions in {-1, 0, 1} per bar from P(up) ``p`` (module docstring); starts flat."""
    if band < 0 or hold_bars < 1:
        raise ValueError("band must be >= 0 and hold_bars >= 1")
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros(p.shape[0])
    pos, since = 0.0, hold_bars            # a first entry is allowed at once
    for t, x in enumerate(p):
        want = pos
        if math.isfinite(x):
            if x > 0.5 + band:
                want = 1.0
            elif x < 0.5 - band:
                want = -1.0
        if want != pos and since >= hold_bars:
            pos, since = want, 0
        since += 1
        out[t] = pos
    return out


def turnover_per_year(pos: np.ndarray, bars_per_year: int = BARS_PER_YEAR) -> float:
    """Σ |position change| (the entry from flat included) per year of bars; NaN for no bars."""
    pos = np.asarray(pos, dtype=np.float64)
    if pos.size == 0:
        return float("nan")
    units = float(np.abs(np.diff(np.concatenate([[0.0], pos]))).sum())
    return units * bars_per_year / pos.size


def position_pnl(pos: np.ndarray, ret_next: np.ndarray, cost_per_unit: float) -> np.ndarray:
    """Per-bar PnL of positions ``pos`` held from bar t's close to t+1's (``ret_next``), minus
    ``cost_per_unit`` per unit of change (rows with a NaN return dropped, as the OOS report
    does for the sign strategy)."""
    ok = np.isfinite(ret_next)
    p = np.asarray(pos, dtype=np.float64)[ok]
    change = np.abs(np.diff(np.concatenate([[0.0], p])))
    out: np.ndarray = p * np.asarray(ret_next)[ok] - cost_per_unit * change
    return out
