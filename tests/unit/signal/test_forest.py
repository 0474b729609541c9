"""The numpy tree walk reproduces the xgboost booster (same leaves, float32 rounding)."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from tm_signal.domain.forest import CompiledForest
from tm_signal.testing import tiny_booster


def rows(n: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)) * 0.02
    X[rng.random(X.shape) < 0.15] = np.nan
    return X


@pytest.mark.parametrize("trees,depth", [(12, 3), (200, 4), (40, 7)])
def test_walk_equals_booster(trees, depth):
    bst = tiny_booster(9, seed=trees, n_trees=trees, depth=depth)
    cf = CompiledForest.from_booster(bst)
    assert cf is not None
    X = rows(1500, 9, seed=depth)
    ref = bst.inplace_predict(X).astype(np.float64)
    got = np.array([cf.predict(x) for x in X])
    assert np.abs(got - ref).max() <= 3e-7
    # the same leaf in every tree; margins differ only by float32 summation order
    leaves = bst.predict(xgb.DMatrix(X), pred_leaf=True)
    assert (np.array([cf.leaf_ids(x) for x in X]) == leaves).all()
    margin = bst.inplace_predict(X, predict_type="margin").astype(np.float64)
    ours = np.array([cf.margin(x) for x in X])
    assert np.abs(ours - margin).max() <= 1e-6 * trees


def test_regression_objective_and_exact_threshold_ties():
    rng = np.random.default_rng(3)
    X = np.round(rng.normal(size=(400, 4)), 1)       # many values equal to split thresholds
    y = X[:, 0] * 2 + rng.normal(size=400)
    bst = xgb.train({"objective": "reg:squarederror", "max_depth": 4, "nthread": 1},
                    xgb.DMatrix(X, label=y), 30)
    cf = CompiledForest.from_booster(bst)
    got = np.array([cf.predict(x) for x in X])
    np.testing.assert_allclose(got, bst.inplace_predict(X), rtol=0, atol=5e-6)


def test_unsupported_boosters_fall_back():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(200, 3)), rng.integers(0, 3, 200)
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3, "nthread": 1},
                      xgb.DMatrix(X, label=y), 3)
    linear = xgb.train({"booster": "gblinear", "objective": "binary:logistic", "nthread": 1},
                       xgb.DMatrix(X, label=y > 0), 3)
    assert CompiledForest.from_booster(multi) is None
    assert CompiledForest.from_booster(linear) is None
