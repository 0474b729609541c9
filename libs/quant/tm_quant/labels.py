"""Supervised labels and the information coefficient.

``label[t] = ln(close[t+h] / close[t])``: the log return realised over the h bars *after* bar t's
close. It is the target for a prediction made at bar t with features of row t; it is only known at
bar t+h, so a training set cut at bar T may use labels up to row T - h (the walk-forward purge gap
must be >= h).

Horizons (:data:`HORIZONS`): ``1d`` = 6, ``3d`` = 18, ``1w`` = 42 bars of 4 h; any whole number of
bars is allowed too (:func:`parse_horizon`). Labels (:data:`LABELS`): ``log_return`` (the default:
the forward log return itself) or ``vol_scaled`` (:func:`vol_scaled_return`: the forward return
in units of the volatility expected over the horizon, ``fwd / (rv_42 × sqrt(h))``, with ``rv_42``
the per-bar realised volatility known at bar t). Scaling never changes a label's sign, so the
classifiers' target ``label > 0`` is the same; a family that reads the label's size sees moves
of a calm week and of a crash week on one scale.
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


#: Named horizons in 4 h bars.
HORIZONS = {"1d": 6, "3d": 18, "1w": 42}
#: The label kinds a training run may use (the first is the default).
LABELS = ("log_return", "vol_scaled")


def parse_horizon(text: str | int) -> int:
    """``"1d"``/``"3d"``/``"1w"`` or a whole number of 4 h bars (>= 1) → bars.

    Raises:
        ValueError: anything else (one line naming the accepted forms).
    """
    t = str(text).strip().lower()
    if t in HORIZONS:
        return HORIZONS[t]
    if t.isdigit() and int(t) >= 1:
        return int(t)
    raise ValueError(f"horizon {text!r}: use 1d, 3d, 1w or a whole number of 4 h bars >= 1")


def vol_scaled_return(fwd: np.ndarray, vol: np.ndarray, horizon: int) -> np.ndarray:
    """``fwd / (vol × sqrt(horizon))``: the forward return over ``horizon`` bars in units of the
    per-bar volatility ``vol`` known at the prediction (e.g. ``rv_42``). NaN where ``fwd`` is NaN
    or ``vol`` is not a finite positive number."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
    f = np.asarray(fwd, dtype=np.float64)
    v = np.asarray(vol, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0)
    out: np.ndarray = np.where(ok, f / np.where(ok, v, 1.0) / np.sqrt(horizon), np.nan)
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
