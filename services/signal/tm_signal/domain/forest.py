"""A gradient-boosted forest evaluated with numpy, for one row at a time.

``xgboost.Booster.inplace_predict`` costs ~130-250 µs per call on one row, almost all of it call
overhead (JSON config, array interface, the C++ predictor), which is most of the per-bar budget.
The same trees walked level by level with vectorised numpy indexing (the shared walker,
:mod:`tm_quant.trees`, which also serves the ``random_forest`` family) cost ~30-100 µs. The walk
follows xgboost's rules exactly: inputs and thresholds in float32, ``x < threshold`` goes left,
a missing value (NaN) follows ``default_left``, leaf values are added to the base margin one tree
after another in float32, and the objective's link turns the margin into a prediction. The leaf
reached in every tree is the booster's; the sum can differ from the booster's in the last float32
bits (its predictor adds in another order): |margin difference| <= ~2e-6, probability <= ~2e-7
(tested on random rows with missing values). Within the service the walk is the only path, so a
mesh replay and an in-process backtest still agree bit for bit.

Only what this walk reproduces is compiled (``gbtree``, numerical splits, one output, objectives
``binary:logistic``, ``reg:logistic``, ``reg:squarederror``); anything else returns None from
:meth:`CompiledForest.from_booster` and the caller keeps the booster.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from tm_quant.trees import walk

_SIGMOID = ("binary:logistic", "reg:logistic")
_IDENTITY = ("reg:squarederror",)


class CompiledForest:
    """Flattened trees: per node its feature, float32 threshold, children and default side; a
    leaf points to itself so that every tree can be walked ``depth`` steps."""

    def __init__(self, feat: np.ndarray, thr: np.ndarray, left: np.ndarray, right: np.ndarray,
                 dleft: np.ndarray, value: np.ndarray, roots: np.ndarray, depth: int,
                 base_margin: float, link: str) -> None:
        self.feat, self.thr, self.left, self.right = feat, thr, left, right
        self.dleft, self.value, self.roots, self.depth = dleft, value, roots, depth
        self.base = np.float32(base_margin)
        self.link = link

    @classmethod
    def from_booster(cls, booster: Any) -> CompiledForest | None:
        """Compile ``booster`` (an ``xgboost.Booster``), or None if the walk cannot reproduce it."""
        model = json.loads(bytes(booster.save_raw("json")))
        learner = model["learner"]
        objective = learner["objective"]["name"]
        gb = learner["gradient_booster"]
        params = learner["learner_model_param"]
        if gb.get("name") != "gbtree" or objective not in _SIGMOID + _IDENTITY \
                or int(params.get("num_target", "1")) != 1 or int(params.get("num_class", "0")) > 1:
            return None
        base = float(str(params["base_score"]).strip("[]"))
        if objective in _SIGMOID:
            if not 0.0 < base < 1.0:
                return None
            base_margin = math.log(base / (1.0 - base))
        else:
            base_margin = base
        feat, thr, left, right, dleft, value, roots = [], [], [], [], [], [], []
        depth, offset = 0, 0
        for tree in gb["model"]["trees"]:
            if any(tree.get("split_type", [])) or tree.get("categories_nodes"):
                return None         # categorical splits: not reproduced here
            lc, rc = tree["left_children"], tree["right_children"]
            n = len(lc)
            roots.append(offset)
            for i in range(n):
                leaf = lc[i] == -1
                feat.append(0 if leaf else int(tree["split_indices"][i]))
                thr.append(0.0 if leaf else tree["split_conditions"][i])
                left.append(offset + (i if leaf else lc[i]))
                right.append(offset + (i if leaf else rc[i]))
                dleft.append(bool(tree["default_left"][i]) and not leaf)
                value.append(tree["split_conditions"][i] if leaf else 0.0)
            depth = max(depth, _depth(lc, rc))
            offset += n
        return cls(np.array(feat, np.intp), np.array(thr, np.float32), np.array(left, np.intp),
                   np.array(right, np.intp), np.array(dleft, bool), np.array(value, np.float32),
                   np.array(roots, np.intp), depth, base_margin,
                   "sigmoid" if objective in _SIGMOID else "identity")

    def _walk(self, x: np.ndarray) -> np.ndarray:
        """The node reached in every tree (the shared walker, :func:`tm_quant.trees.walk`)."""
        node: np.ndarray = walk(self.feat, self.thr, self.left, self.right, self.dleft,
                                self.roots, self.depth, x.reshape(1, -1))[0]
        return node

    def leaf_ids(self, x: np.ndarray) -> np.ndarray:
        """Per tree, the id of the leaf ``x`` ends in (as ``pred_leaf=True`` numbers them)."""
        ids: np.ndarray = self._walk(x) - self.roots
        return ids

    def margin(self, x: np.ndarray) -> float:
        """Base margin plus the leaf values, added tree after tree in float32."""
        leaves = self.value[self._walk(x)]
        return float(np.cumsum(np.concatenate(([self.base], leaves)), dtype=np.float32)[-1])

    def predict(self, x: np.ndarray) -> float:
        """The booster's prediction for one row ``x`` (its columns, NaN = missing)."""
        m = np.float32(self.margin(x))
        if self.link == "sigmoid":
            return float(np.float32(1.0) / (np.float32(1.0) + np.exp(-m)))
        return float(m)


def _depth(lc: list[int], rc: list[int]) -> int:
    """Edges on the longest root-to-leaf path."""
    best, stack = 0, [(0, 0)]
    while stack:
        i, d = stack.pop()
        if lc[i] == -1:
            best = max(best, d)
        else:
            stack.extend(((lc[i], d + 1), (rc[i], d + 1)))
    return best
