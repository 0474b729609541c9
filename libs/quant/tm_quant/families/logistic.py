"""The example family ``logistic``: an L2-regularised logistic regression in pure numpy.

Model: ``P(up) = sigmoid(b + sum_j w_j z_j)`` with ``z_j = clip((x_j - mean_j) / scale_j, ±clip)``
(``mean``/``scale``: the training rows' mean and standard deviation; a missing value, NaN, counts
as the mean, ``z = 0``). Fit: Newton's method on the mean log-loss plus ``l2 / 2 * |w|^2`` (the
intercept is not penalised), from ``w = 0``; deterministic, no seed needed. A column without a
finite training value gets ``mean 0, scale 1`` and stays at ``z = 0`` (e.g. the BTC cross features
of BTCUSDT itself).

Arrays (``SYM.npz`` in the bundle): ``mean``, ``scale``, ``coef`` (each ``(k,)``), ``intercept``
and ``clip`` (each ``(1,)``). Read this file as the template for your own family (README: "Plug
in your own signal").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from tm_quant.families.base import Arrays, SignalFamily, TrainRows

#: L2 penalty on the standardised coefficients (strong: 4 h returns carry little signal).
L2 = 1.0
#: Standardised inputs are clipped to ±CLIP (4 h returns have heavy tails).
CLIP = 5.0
MAX_NEWTON_STEPS = 50
FEATURES = ("ret_1", "ret_6", "ret_42", "rv_42", "garch_vol", "close_ema_26", "macd_hist",
            "rsi_14", "bb_pctb_20", "volume_z_20", "funding_mean_18", "dvol_chg_6", "btc_ret_6")


def _sigmoid(m: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * m))     # overflow-free logistic
    return out


def _standardise(arrays: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    z = (np.asarray(X, dtype=np.float64) - arrays["mean"]) / arrays["scale"]
    c = float(arrays["clip"][0])
    out: np.ndarray = np.clip(np.where(np.isfinite(z), z, 0.0), -c, c)
    return out


def predict(arrays: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """P(up) per row of ``X`` (``(m, k)``, NaN = missing). Each row's margin is its terms'
    correctly rounded sum (``math.fsum``), so one row alone gives the same bits as in a batch,
    whatever the array's memory alignment or the CPU's vector width (numpy's SIMD ``sum``
    rounds by both: a served row differed from the validated batch in the last bit)."""
    z = _standardise(arrays, X)
    terms = z * arrays["coef"]
    margin = np.fromiter((math.fsum(row) for row in terms), dtype=np.float64, count=len(terms))
    return _sigmoid(margin + arrays["intercept"][0])


def fit(rows: TrainRows) -> Arrays:
    """Newton's method on the penalised mean log-loss (module docstring)."""
    X = np.asarray(rows.X, dtype=np.float64)
    y = np.asarray(rows.y, dtype=np.float64)
    k = X.shape[1]
    fin = np.isfinite(X)
    count = fin.sum(axis=0)
    safe = np.where(fin, X, 0.0)
    mean = np.divide(safe.sum(axis=0), count, out=np.zeros(k), where=count > 0)
    var = np.divide((np.where(fin, X - mean, 0.0) ** 2).sum(axis=0), count, out=np.zeros(k),
                    where=count > 0)
    scale = np.where(var > 0, np.sqrt(var), 1.0)
    arrays: Arrays = {"mean": mean, "scale": scale, "coef": np.zeros(k),
                      "intercept": np.zeros(1), "clip": np.array([CLIP])}
    Z = np.column_stack([np.ones(X.shape[0]), _standardise(arrays, X)])
    theta = np.zeros(k + 1)
    penalty = np.full(k + 1, L2)
    penalty[0] = 0.0
    n = max(1, X.shape[0])
    for _ in range(MAX_NEWTON_STEPS):
        p = _sigmoid(Z @ theta)
        grad = Z.T @ (p - y) / n + penalty * theta
        hess = (Z.T * (p * (1.0 - p))) @ Z / n + np.diag(penalty) + 1e-12 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    arrays["intercept"] = theta[:1].copy()
    arrays["coef"] = theta[1:].copy()
    return arrays


def check(arrays: Mapping[str, np.ndarray], n_features: int) -> None:
    """Refuse arrays :func:`predict` cannot use (``ValueError`` naming the array)."""
    for name, shape in (("mean", (n_features,)), ("scale", (n_features,)),
                        ("coef", (n_features,)), ("intercept", (1,)), ("clip", (1,))):
        a = arrays.get(name)
        if a is None:
            raise ValueError(f"array {name!r} missing")
        if a.shape != shape or not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"array {name!r} must be float {shape}, got {a.dtype} {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"array {name!r} has non-finite values")
    if np.any(arrays["scale"] <= 0) or arrays["clip"][0] <= 0:
        raise ValueError("arrays 'scale' and 'clip' must be > 0")


FAMILY = SignalFamily(name="logistic", fit=fit, predict=predict, features=FEATURES, check=check,
                      summary="L2-regularised logistic regression on 13 fixed features (numpy)")
