"""Spearman rank correlation (the information coefficient), numpy only.

One definition for the trainer (:func:`tm_quant.labels.spearman_ic`, scipy's ranks) and the live
IC of the signal service (:func:`average_ranks`, without scipy's per-call overhead, which was a
third of the per-bar cost). Both rankings give ties the mean of their positions, so the values
are the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get the mean of their positions (scipy's ``rankdata`` "average")."""
    order = np.argsort(x, kind="mergesort")
    s = x[order]
    first = np.concatenate(([True], s[1:] != s[:-1]))
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.concatenate((starts[1:], [x.shape[0]]))
    ranks = np.empty(x.shape[0])
    ranks[order] = ((starts + ends - 1) / 2.0 + 1.0)[group]
    return ranks


#: One-sided 5 % normal quantile: the default bar for "significantly" positive/negative live IC.
IC_SIGNIFICANCE_Z = 1.645


def ic_t_stat(ic: float, n: int) -> float:
    """t statistic of a correlation ``ic`` over ``n`` pairs: ic·sqrt((n − 2) / (1 − ic²)) (NaN
    with fewer than 3 pairs or a non-finite ic; ±inf at |ic| = 1)."""
    if n < 3 or not np.isfinite(ic):
        return float("nan")
    if abs(ic) >= 1.0:
        return float(np.copysign(np.inf, ic))
    return float(ic * np.sqrt((n - 2) / (1.0 - ic * ic)))


def ic_significance(ic: float | None, n: int, z: float = IC_SIGNIFICANCE_Z) -> str:
    """``"positive"`` / ``"negative"`` when the live IC's t statistic over its ``n`` matured
    predictions passes ±``z`` (a one-sided test at the normal quantile ``z``), else ``"none"``
    (also for no IC yet)."""
    if ic is None:
        return "none"
    t = ic_t_stat(ic, n)
    if not np.isfinite(t) and not np.isinf(t):
        return "none"
    return "positive" if t >= z else "negative" if t <= -z else "none"


def spearman(pred: np.ndarray, realised: np.ndarray,
             rank: Callable[[np.ndarray], np.ndarray] = average_ranks) -> float:
    """Spearman correlation of two float64 arrays of one length, in [-1, 1]. NaN pairs are
    dropped; NaN with fewer than 3 pairs or no dispersion. ``rank``: average ranks of an array."""
    ok = ~(np.isnan(pred) | np.isnan(realised))
    if ok.sum() < 3:
        return float("nan")
    rp, rr = rank(pred[ok]), rank(realised[ok])
    rp -= rp.mean()
    rr -= rr.mean()
    den = np.sqrt(np.dot(rp, rp) * np.dot(rr, rr))
    if den == 0:
        return float("nan")
    return float(np.clip(np.dot(rp, rr) / den, -1.0, 1.0))
