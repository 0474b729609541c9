"""Issue 16 part 4: the random forest exported to the numpy tree walker predicts what
scikit-learn predicts (to ~1e-16, ties, missing values and missing-only splits included); the
shared walker keeps scikit-learn's ``x <= t`` split exactly; the trend baseline is the rule its
docstring states."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier
from tm_quant.families import TrainRows, forest, trend
from tm_quant.trees import strict_threshold


def _rows(seed: int, n: int = 2500) -> TrainRows:
    rng = np.random.default_rng(seed)
    k = len(forest.FEATURES)
    X = rng.normal(size=(n, k))
    X[:, 3] = np.round(X[:, 3], 1)                  # repeated values: thresholds between them
    X[rng.random(X.shape) < 0.05] = np.nan
    fwd = 0.3 * np.nan_to_num(X[:, 0]) + rng.logistic(size=n)
    y = (fwd > 0).astype(np.int8)
    X[: n // 3, 5] = np.nan                         # a block missing one column that predicts
    y[: n // 3] = 1
    return TrainRows(X, y, fwd, forest.FEATURES, "ETHUSDT", seed)


def _sklearn(rows: TrainRows) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=forest.N_TREES, max_depth=forest.MAX_DEPTH,
        min_samples_leaf=forest.MIN_SAMPLES_LEAF, max_features="sqrt", bootstrap=True,
        max_samples=forest.MAX_SAMPLES, random_state=rows.seed, n_jobs=1).fit(rows.X, rows.y)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_exported_forest_predicts_what_scikit_learn_predicts(seed):
    rows = _rows(seed)
    arrays = forest.fit(rows)
    forest.check(arrays, rows.X.shape[1])
    rf = _sklearn(rows)
    rng = np.random.default_rng(seed + 10)
    test = rng.normal(size=(1500, rows.X.shape[1]))
    test[rng.random(test.shape) < 0.1] = np.nan
    X = np.vstack([rows.X, test])
    # every threshold itself and its float32 neighbours: the split's side is exact
    thr = arrays["thr"][np.isfinite(arrays["thr"]) & (arrays["left"] != np.arange(arrays["left"].size))]
    feat = arrays["feat"][np.isin(arrays["thr"], thr)]
    edge = np.zeros((3 * thr.size, X.shape[1]))
    for j, (f, s) in enumerate(zip(feat, thr, strict=True)):
        for d, v in enumerate((np.nextafter(s, np.float32(-np.inf)), s, np.nextafter(s, np.float32(np.inf)))):
            edge[3 * j + d, f] = v
    X = np.vstack([X, edge])
    got, want = forest.predict(arrays, X), rf.predict_proba(X)[:, 1]
    assert np.max(np.abs(got - want)) <= 1e-12
    assert np.isinf(arrays["thr"]).any()           # a missing-only split was exported


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False, width=64))
def test_the_strict_threshold_keeps_scikit_learns_side_for_every_float32(t):
    s = strict_threshold(np.array([t]))[0]
    x32 = np.array([np.float32(t), np.nextafter(np.float32(t), np.float32(np.inf)),
                    np.nextafter(np.float32(t), np.float32(-np.inf))], dtype=np.float32)
    assert np.array_equal(x32 < s, x32.astype(np.float64) <= t)


def test_a_forest_trained_on_one_class_predicts_that_class():
    rows = _rows(0, n=400)
    ones = TrainRows(rows.X, np.ones_like(rows.y), rows.fwd, rows.features, "ETHUSDT", 0)
    assert np.all(forest.predict(forest.fit(ones), rows.X[:5]) == 1.0)
    zeros = TrainRows(rows.X, np.zeros_like(rows.y), rows.fwd, rows.features, "ETHUSDT", 0)
    assert np.all(forest.predict(forest.fit(zeros), rows.X[:5]) == 0.0)


def test_bad_forest_arrays_are_refused():
    arrays = forest.fit(_rows(0, n=400))
    with pytest.raises(ValueError, match="'feat' has indices outside"):
        forest.check(arrays, 0)
    bad = {**arrays, "left": arrays["left"] + 10**6}
    with pytest.raises(ValueError, match="'left' has indices outside"):
        forest.check(bad, 13)
    with pytest.raises(ValueError, match="'value' must be in"):
        forest.check({**arrays, "value": arrays["value"] + 2}, 13)


def test_the_trend_baseline_is_vol_targeted_time_series_momentum():
    X = np.array([[0.05, 0.01], [-0.05, 0.01], [0.05, 0.04], [-0.02, 0.005], [np.nan, 0.01],
                  [0.05, 0.0], [0.0, 0.01]])
    rows = TrainRows(X, np.zeros(7, np.int8), np.zeros(7), trend.FEATURES, "BTCUSDT", 0)
    arrays = trend.fit(rows)
    assert arrays["target"][0] == pytest.approx(0.01)          # the median finite positive rv
    p = trend.predict(arrays, X)
    # exposure min(1, 0.01 / rv) in the momentum's direction; no view when an input is missing
    assert p.tolist() == pytest.approx([1.0, 0.0, 0.5 + 0.5 * 0.25, 0.0, 0.5, 0.5, 0.5])
    trend.check(arrays, 2)
    with pytest.raises(ValueError, match="target"):
        trend.check({"target": np.array([0.0])}, 2)
