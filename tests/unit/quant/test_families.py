"""Signal model families (tm_quant.families): the registry and the example ``logistic`` family."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_quant import families
from tm_quant.families import BUILTIN, FAMILIES, SignalFamily, TrainRows, UnknownFamily, logistic
from tm_quant.families import _table as table


def _rows(n: int = 3000, k: int = 4, seed: int = 0) -> TrainRows:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)) * np.array([0.01, 5.0, 1.0, 2.0])
    X[rng.random(X.shape) < 0.05] = np.nan
    z = np.nan_to_num((X - 0) / np.array([0.01, 5.0, 1.0, 2.0]))
    fwd = 0.8 * z[:, 0] - 0.5 * z[:, 2] + rng.logistic(size=n)
    return TrainRows(X=X, y=(fwd > 0).astype(np.int8), fwd=fwd, features=("a", "b", "c", "d"),
                     symbol="ETHUSDT", seed=1)


def test_registry_knows_the_builtin_and_the_example():
    assert families.known()[0] == "xgboost" and "logistic" in families.known()
    assert BUILTIN not in FAMILIES and set(FAMILIES) == set(families.known()[1:])
    assert families.get("logistic") is logistic.FAMILY


@pytest.mark.parametrize("name", ["nope", "os", "tm_quant.families.logistic:FAMILY", "", "xgboost"])
def test_an_unknown_name_is_refused_naming_the_known_ones(name):
    with pytest.raises(UnknownFamily, match="unknown signal family .*this code knows xgboost, "
                                            "logistic.*never loaded from a bundle"):
        families.get(name)


def test_a_family_definition_is_checked():
    def fit(rows):
        return {}

    def predict(arrays, X):
        return np.zeros(len(X))

    for bad in ("xgboost", "X", "a", "has-dash", "1abc"):
        with pytest.raises(ValueError, match="2-32 characters"):
            SignalFamily(name=bad, fit=fit, predict=predict)
    with pytest.raises(ValueError, match=r"unknown: \['nope'\]"):
        SignalFamily(name="mine", fit=fit, predict=predict, features=("ret_1", "nope"))
    with pytest.raises(ValueError, match="distinct"):
        SignalFamily(name="mine", fit=fit, predict=predict, features=("ret_1", "ret_1"))
    one = SignalFamily(name="mine", fit=fit, predict=predict)
    with pytest.raises(ValueError, match="registered twice"):
        table(one, one)


def test_logistic_fit_finds_a_planted_signal_and_is_deterministic():
    rows = _rows()
    a = logistic.fit(rows)
    b = logistic.fit(rows)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    logistic.check(a, 4)
    coef = a["coef"]
    # shrunk by the L2 penalty, but the planted signs and order come out
    assert coef[0] > 0.05 and coef[2] < -0.03 and coef[0] > -coef[2]
    assert max(abs(coef[1]), abs(coef[3])) < 0.25 * min(coef[0], -coef[2])
    p = logistic.predict(a, rows.X)
    assert p.shape == (rows.X.shape[0],) and np.all((p > 0) & (p < 1))
    assert np.corrcoef(p, rows.fwd)[0, 1] > 0.2


def test_logistic_missing_values_count_as_the_mean_and_dead_columns_stay_zero():
    rows = _rows()
    X = rows.X.copy()
    X[:, 3] = np.nan                                    # e.g. BTC cross features of BTC itself
    a = logistic.fit(TrainRows(X, rows.y, rows.fwd, rows.features, rows.symbol, rows.seed))
    assert a["coef"][3] == 0.0 and a["mean"][3] == 0.0 and a["scale"][3] == 1.0
    p_nan = logistic.predict(a, np.full((1, 4), np.nan))[0]
    assert p_nan == pytest.approx(1 / (1 + np.exp(-a["intercept"][0])), abs=1e-15)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2999), st.integers(1, 50))
def test_one_row_alone_gives_the_same_bits_as_in_a_batch(i, m):
    """What the signal service computes (one row per bar) equals what the trainer validated
    (a window of rows), bit for bit."""
    rows = _rows()
    a = _fitted()
    batch = logistic.predict(a, rows.X[i:i + m])
    assert logistic.predict(a, rows.X[i:i + 1])[0] == batch[0]


_CACHE: dict = {}


def _fitted():
    if "a" not in _CACHE:
        _CACHE["a"] = logistic.fit(_rows())
    return _CACHE["a"]


@pytest.mark.parametrize("mutate, needle", [
    (lambda a: a.pop("coef"), "'coef' missing"),
    (lambda a: a.update(coef=np.zeros(3)), "'coef' must be float (4,)"),
    (lambda a: a.update(mean=np.full(4, np.nan)), "'mean' has non-finite"),
    (lambda a: a.update(scale=np.zeros(4)), "must be > 0"),
])
def test_logistic_check_refuses_unusable_arrays(mutate, needle):
    a = dict(_fitted())
    mutate(a)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        logistic.check(a, 4)
