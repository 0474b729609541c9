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
