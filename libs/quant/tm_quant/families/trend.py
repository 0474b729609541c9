"""The family ``trend``: a transparent baseline, volatility-targeted time-series momentum.

Rule (nothing is learned but one scale): the direction is the sign of the last week's log
return (``ret_42``: 42 bars of 4 h), the exposure is volatility-targeted,
``min(1, target / rv_42)`` (``rv_42``: the last week's per-bar realised volatility), so a calm
market gets a full position and a market twice as volatile as usual half of one. As a
probability: ``P(up) = 0.5 + 0.5 × sign(ret_42) × min(1, target / rv_42)``, so the signal's
confidence ``|2p − 1|`` *is* the vol-targeted exposure. A missing input (NaN) or a volatility
of 0 gives 0.5 (no view).

Fit: ``target`` = the median ``rv_42`` of the training rows (exposure 1 at typical volatility);
no label is used, so the rule cannot be fitted to noise; it competes under the same gates as
every family. Arrays (``SYM.npz``): ``target`` (1,) float64.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tm_quant.families.base import Arrays, SignalFamily, TrainRows

FEATURES = ("ret_42", "rv_42")
#: the target when the training rows have no finite volatility (a per-bar 1.5 %: ~70 % a year)
DEFAULT_TARGET = 0.015


def fit(rows: TrainRows) -> Arrays:
    """``target``: the median finite, positive ``rv_42`` of the rows (module docstring)."""
    vol = np.asarray(rows.X, dtype=np.float64)[:, FEATURES.index("rv_42")]
    ok = vol[np.isfinite(vol) & (vol > 0)]
    return {"target": np.array([float(np.median(ok)) if ok.size else DEFAULT_TARGET])}


def predict(arrays: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """P(up) per row of ``X`` (columns ``ret_42, rv_42``; elementwise, so rows are independent)."""
    X = np.asarray(X, dtype=np.float64)
    mom, vol = X[:, 0], X[:, 1]
    ok = np.isfinite(mom) & np.isfinite(vol) & (vol > 0)
    safe = np.where(ok, vol, 1.0)
    exposure = np.where(ok, np.minimum(1.0, float(arrays["target"][0]) / safe), 0.0)
    out: np.ndarray = 0.5 + 0.5 * np.sign(np.where(ok, mom, 0.0)) * exposure
    return out


def check(arrays: Mapping[str, np.ndarray], n_features: int) -> None:
    """Refuse arrays :func:`predict` cannot use (``ValueError`` naming the problem)."""
    t = arrays.get("target")
    if n_features != len(FEATURES):
        raise ValueError(f"the trend family reads {len(FEATURES)} features, got {n_features}")
    if t is None or t.shape != (1,) or t.dtype.kind != "f" or not (np.isfinite(t[0]) and t[0] > 0):
        raise ValueError("array 'target' must be one finite float > 0")


FAMILY = SignalFamily(name="trend", fit=fit, predict=predict, features=FEATURES, check=check,
                      summary="volatility-targeted time-series momentum: sign(ret_42) × "
                              "min(1, median rv / rv_42) (transparent baseline)")
