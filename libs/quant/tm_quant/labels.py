"""Supervised labels and the information coefficient.

``label[t] = ln(close[t+h] / close[t])``: the log return realised over the h bars *after* bar t's
close. It is the target for a prediction made at bar t with features of row t; it is only known at
bar t+h, so a training set cut at bar T may use labels up to row T - h (the walk-forward purge gap
must be >= h).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from tm_quant.ic import spearman


def forward_log_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """Forward log return over ``horizon`` bars, aligned to the bar where it is predicted.

    Args:
        close: closes (> 0), one per bar, oldest first.
        horizon: bars ahead, >= 1 (e.g. 6 = one day of 4h bars).

    Returns:
        float64 array like ``close``: ``out[t] = ln(close[t+h] / close[t])``; the last
        ``horizon`` entries are NaN.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
    c = np.asarray(close, dtype=np.float64)
    if np.any(~(c > 0)):
        raise ValueError("closes must be > 0")
    lc = np.log(c)
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] > horizon:
        out[:-horizon] = lc[horizon:] - lc[:-horizon]
    return out


def spearman_ic(pred: np.ndarray, realised: np.ndarray) -> float:
    """Spearman rank correlation of predictions with realised returns, in [-1, 1].

    Pairs where either value is NaN are dropped; ties get average ranks. Returns NaN when fewer
    than 3 pairs remain or either side is constant (the correlation is undefined there).
    """
    p = np.asarray(pred, dtype=np.float64).ravel()
    r = np.asarray(realised, dtype=np.float64).ravel()
    if p.shape != r.shape:
        raise ValueError(f"pred and realised differ in length: {p.shape[0]} vs {r.shape[0]}")
    return spearman(p, r, rankdata)
