"""The family ``random_forest``: a scikit-learn ``RandomForestClassifier``, exported to the numpy
tree walker the built-in xgboost family is served with (:mod:`tm_quant.trees`).

Model: ``N_TREES`` shallow trees (depth ``MAX_DEPTH``, at least ``MIN_SAMPLES_LEAF`` rows a
leaf, ``sqrt(k)`` candidate features a split, each tree on a bootstrap of ``MAX_SAMPLES`` of the
rows), Gini impurity on the label ``fwd > 0``; missing values (NaN) handled by the trees
(scikit-learn learns a side per split). Fixed hyper-parameters, not tuned (ARCHITECTURE §7);
deterministic for a given ``rows.seed``. P(up) = the mean over trees of the leaf's share of up
rows, exactly ``predict_proba[:, 1]`` (to ~1e-16: the sum's order differs).

Export: every tree's nodes flattened (leaves point to themselves); scikit-learn's split
``x <= t`` (``x`` as float32, ``t`` float64) becomes the walker's ``x < s`` with
``s = strict_threshold(t)``, the same side for every float32 input (``t = +inf``, a split that
sends only the missing values right, stays ``+inf``); its ``missing_go_to_left``
becomes ``dleft``. Arrays (``SYM.npz``): ``feat``, ``left``, ``right``, ``roots``, ``depth``
(int64), ``thr`` (float32), ``dleft`` (bool), ``value`` (float64: a leaf's P(up), 0 elsewhere).
scikit-learn is imported by ``fit`` only (the trainer); serving is numpy.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tm_quant.families.base import Arrays, SignalFamily, TrainRows
from tm_quant.families.logistic import FEATURES
from tm_quant.trees import depth_of, strict_threshold, walk

N_TREES = 100
MAX_DEPTH = 4
MIN_SAMPLES_LEAF = 100
MAX_SAMPLES = 0.5
MAX_WALK_DEPTH = 64


def fit(rows: TrainRows) -> Arrays:
    """A ``RandomForestClassifier`` on the rows, exported (module docstring)."""
    from sklearn.ensemble import RandomForestClassifier

    X = np.asarray(rows.X, dtype=np.float64)
    y = np.asarray(rows.y, dtype=np.int8)
    rf = RandomForestClassifier(n_estimators=N_TREES, max_depth=MAX_DEPTH,
                                min_samples_leaf=MIN_SAMPLES_LEAF, max_features="sqrt",
                                bootstrap=True, max_samples=MAX_SAMPLES if X.shape[0] >= 2 else None,
                                random_state=int(rows.seed), n_jobs=1)
    rf.fit(X, y)
    return export(rf)


def export(rf: object) -> Arrays:
    """The walker's arrays of a fitted ``RandomForestClassifier`` on labels {0, 1}."""
    classes = [int(c) for c in rf.classes_]                               # type: ignore[attr-defined]
    up = classes.index(1) if 1 in classes else None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feat", "thr", "left", "right", "dleft",
                                                          "value")}
    roots, offset, depth = [], 0, 0
    for est in rf.estimators_:                                            # type: ignore[attr-defined]
        t = est.tree_
        n = int(t.node_count)
        leaf = t.children_left == -1
        own = np.arange(n)
        left = np.where(leaf, own, t.children_left)
        right = np.where(leaf, own, t.children_right)
        counts = t.value[:, 0, :].astype(np.float64)
        share = counts[:, up] / counts.sum(axis=1) if up is not None else np.zeros(n)
        parts["feat"].append(np.where(leaf, 0, t.feature).astype(np.int64))
        parts["thr"].append(np.where(leaf, np.float32(0), strict_threshold(np.where(leaf, 0.0,
                                                                               t.threshold))))
        parts["left"].append((left + offset).astype(np.int64))
        parts["right"].append((right + offset).astype(np.int64))
        parts["dleft"].append(~leaf & (np.asarray(t.missing_go_to_left) != 0))
        parts["value"].append(np.where(leaf, share, 0.0))
        depth = max(depth, depth_of(left, right))
        roots.append(offset)
        offset += n
    out: Arrays = {k: np.concatenate(v) for k, v in parts.items()}
    out["thr"] = out["thr"].astype(np.float32)
    out["roots"] = np.asarray(roots, dtype=np.int64)
    out["depth"] = np.asarray([depth], dtype=np.int64)
    return out


def predict(arrays: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """P(up) per row of ``X`` (``(m, k)``, NaN = missing): the mean of the trees' leaf values,
    reduced per row (``axis=1``), so a row alone gives the same bits as in a batch."""
    a = arrays
    node = walk(a["feat"], a["thr"], a["left"], a["right"], a["dleft"], a["roots"],
                int(a["depth"][0]), np.asarray(X, dtype=np.float64))
    out: np.ndarray = a["value"][node].sum(axis=1) / a["roots"].shape[0]
    return out


def check(arrays: Mapping[str, np.ndarray], n_features: int) -> None:
    """Refuse arrays the walker cannot use (``ValueError`` naming the array)."""
    kinds = {"feat": "i", "left": "i", "right": "i", "roots": "i", "depth": "i", "thr": "f",
             "value": "f", "dleft": "b"}
    for name, kind in kinds.items():
        a = arrays.get(name)
        if a is None:
            raise ValueError(f"array {name!r} missing")
        if a.ndim != 1 or a.dtype.kind != kind:
            raise ValueError(f"array {name!r} must be 1-d of kind {kind!r}, got {a.dtype} {a.shape}")
    n = arrays["feat"].shape[0]
    for name in ("thr", "left", "right", "dleft", "value"):
        if arrays[name].shape[0] != n:
            raise ValueError(f"array {name!r} has {arrays[name].shape[0]} nodes, 'feat' {n}")
    roots, depth = arrays["roots"], arrays["depth"]
    if n == 0 or roots.shape[0] == 0 or depth.shape != (1,) or not 0 <= depth[0] <= MAX_WALK_DEPTH:
        raise ValueError("arrays 'roots' and 'depth' must name at least one tree, depth 0-64")
    for name, hi in (("feat", n_features), ("left", n), ("right", n), ("roots", n)):
        a = arrays[name]
        if a.size and (a.min() < 0 or a.max() >= hi):
            raise ValueError(f"array {name!r} has indices outside [0, {hi})")
    v = arrays["value"]
    # a threshold may be +inf: scikit-learn's split "every value left, missing ones right"
    if not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 1 or \
            np.any(np.isnan(arrays["thr"])):
        raise ValueError("arrays 'value' must be in [0, 1] and 'thr' not NaN")


FAMILY = SignalFamily(name="random_forest", fit=fit, predict=predict, features=FEATURES,
                      check=check,
                      summary="scikit-learn random forest (100 trees, depth 4) on the 13 logistic "
                              "features, served by the numpy tree walker")
