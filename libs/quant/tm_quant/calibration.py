"""Platt calibration of P(up), its reliability curve and how often a confidence is reached.

Numpy only. The trainer fits :func:`fit_platt` on the walk-forward's **out-of-sample**
predictions (each made by a model trained before its window) and stores ``{"a", "b"}`` in the
bundle; the signal service applies :func:`apply_platt` (the bundle contract's formula,
``p = 1 / (1 + exp(-(a · raw + b)))``, identity for ``a = 1, b = 0``).

The slope is constrained to ``a >= 0``: a model whose OOS predictions are anti-predictive is
*not* turned around by its calibration (that would be a new model chosen on test windows); it
gets ``a = 0`` and ``b`` = the logit of the base rate, so its confidence is the base rate's and
says so (``"flat": True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_NEWTON_STEPS = 100
#: Tiny ridge on (a, b) so a separable or constant input still gives finite parameters.
RIDGE = 1e-6


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def apply_platt(raw: np.ndarray, a: float, b: float) -> np.ndarray:
    """Calibrated P(up) for raw outputs ``raw``; ``raw`` itself for the identity (1, 0)."""
    r = np.asarray(raw, dtype=np.float64)
    if a == 1.0 and b == 0.0:
        return r
    return _sigmoid(a * r + b)


def _newton(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    theta = np.zeros(Z.shape[1])
    n = max(1, Z.shape[0])
    for _ in range(MAX_NEWTON_STEPS):
        p = _sigmoid(Z @ theta)
        grad = Z.T @ (p - y) / n + RIDGE * theta
        hess = (Z.T * (p * (1.0 - p))) @ Z / n + RIDGE * np.eye(Z.shape[1])
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if float(np.max(np.abs(step))) < 1e-12:
            break
    return theta


def fit_platt(raw: np.ndarray, up: np.ndarray) -> dict[str, Any]:
    """Fit ``P(up) = sigmoid(a · raw + b)`` by maximum likelihood (Newton), ``a >= 0``.

    Args:
        raw: raw model outputs (here already probabilities in [0, 1]); NaN rows dropped.
        up: 1 where the forward return was > 0, else 0 (NaN rows dropped).

    Returns:
        ``{"a", "b", "n", "flat"}``: ``flat`` is True when the unconstrained slope was <= 0 and
        the fit fell back to the base rate (``a = 0``).

    Raises:
        ValueError: fewer than 10 usable rows.
    """
    r = np.asarray(raw, dtype=np.float64)
    y = np.asarray(up, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(y)
    r, y = r[ok], y[ok]
    if r.size < 10:
        raise ValueError(f"Platt calibration needs >= 10 OOS predictions, got {r.size}")
    theta = _newton(np.column_stack([r, np.ones(r.size)]), y)
    if not theta[0] > 0:
        b = _newton(np.ones((r.size, 1)), y)
        return {"a": 0.0, "b": float(b[0]), "n": int(r.size), "flat": True}
    return {"a": float(theta[0]), "b": float(theta[1]), "n": int(r.size), "flat": False}


def reliability(p: np.ndarray, up: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """The reliability curve: ``bins`` equal-width bins of ``p`` over [0, 1]; for each non-empty
    bin ``{"lo", "hi", "n", "mean_p", "observed"}`` (observed = share of ups)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(up, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(y)
    p, y = p[ok], y[ok]
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    out = []
    for k in range(bins):
        m = idx == k
        if m.any():
            out.append({"lo": k / bins, "hi": (k + 1) / bins, "n": int(m.sum()),
                        "mean_p": float(p[m].mean()), "observed": float(y[m].mean())})
    return out


def confidence(p: np.ndarray) -> np.ndarray:
    """The signal's confidence ``|2p − 1|`` (NaN → 0, as the service emits for a missing p)."""
    c: np.ndarray = np.abs(2.0 * np.nan_to_num(np.asarray(p, dtype=np.float64), nan=0.5) - 1.0)
    return c


def reach(p: np.ndarray, thresholds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """How often each named confidence threshold is reached: ``{name: {"threshold", "share",
    "bars", "reachable"}}`` (``reachable``: reached on at least one bar)."""
    c = confidence(p)
    out = {}
    for name, thr in thresholds.items():
        hit = int(np.sum(c >= thr))
        out[name] = {"threshold": float(thr), "bars": hit,
                     "share": float(hit / c.size) if c.size else float("nan"),
                     "reachable": hit > 0}
    return out
