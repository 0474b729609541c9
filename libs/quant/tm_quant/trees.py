"""The numpy tree walker: a forest of binary trees flattened into arrays, walked level by level
for many rows at once (no I/O, no third-party model object at serving time).

One layout for every tree model served here: the built-in xgboost family compiled by the signal
service (``tm_signal.domain.forest.CompiledForest``) and the ``random_forest`` family
(:mod:`tm_quant.families.forest`). Per node: ``feat`` (column), ``thr`` (float32 threshold),
``left``/``right`` (children; a leaf points to itself, so every tree can be walked ``depth``
steps), ``dleft`` (a missing value goes left); per tree its ``roots`` offset.

The rule (xgboost's): inputs are cast to float32, ``x < thr`` goes left, NaN goes left exactly
when ``dleft``. A model with another rule is exported into this one (scikit-learn's
``x <= t``, ``t`` float64, becomes ``x < nextafter(round_down32(t), +inf)``: the same split for
every float32 input: :func:`strict_threshold`).
"""

from __future__ import annotations

import numpy as np


def walk(feat: np.ndarray, thr: np.ndarray, left: np.ndarray, right: np.ndarray,
         dleft: np.ndarray, roots: np.ndarray, depth: int, X: np.ndarray) -> np.ndarray:
    """The node each row of ``X`` (``(m, k)``, NaN = missing) reaches in every tree:
    ``(m, n_trees)`` int node indices (into the flattened arrays). Rows do not interact."""
    xf = np.asarray(X).astype(np.float32)
    m, k = xf.shape
    flat = xf.ravel()
    node = roots if m == 1 else np.broadcast_to(roots, (m, roots.shape[0]))
    base = 0 if m == 1 else (np.arange(m) * k)[:, None]    # one row (the service): no broadcast
    for _ in range(int(depth)):
        v = flat[feat[node] + base]
        go_left = (v < thr[node]) | (np.isnan(v) & dleft[node])
        node = np.where(go_left, left[node], right[node])
    out: np.ndarray = node.reshape(m, roots.shape[0])
    return out


def strict_threshold(t: np.ndarray) -> np.ndarray:
    """float32 thresholds ``s`` with ``x < s`` ⟺ ``x <= t`` for every float32 ``x`` (``t``
    float64, finite): the largest float32 not above ``t``, then the next float32 up."""
    t = np.asarray(t, dtype=np.float64)
    down = t.astype(np.float32)
    down = np.where(down.astype(np.float64) > t, np.nextafter(down, np.float32(-np.inf)), down)
    out: np.ndarray = np.nextafter(down.astype(np.float32), np.float32(np.inf)).astype(np.float32)
    return out


def depth_of(left: np.ndarray, right: np.ndarray, root: int = 0) -> int:
    """Edges on the longest root-to-leaf path of one tree (``left[i] == i`` at a leaf)."""
    best, stack = 0, [(root, 0)]
    while stack:
        i, d = stack.pop()
        if left[i] == i:
            best = max(best, d)
        else:
            stack.extend(((int(left[i]), d + 1), (int(right[i]), d + 1)))
    return best
