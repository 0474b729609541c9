"""Deflated Sharpe, timing, consistency (tm_quant.gates) and Platt calibration
(tm_quant.calibration): formulas checked against independent computations."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from tm_quant.calibration import apply_platt, confidence, fit_platt, reach, reliability
from tm_quant.gates import (
    deflated_sharpe,
    expected_max_sharpe,
    positive_share,
    probabilistic_sharpe,
    subperiod_returns,
    t_stat,
    timing_pnl,
)


def test_one_trial_is_the_probabilistic_sharpe_against_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(0.001, 0.01, 2000)
    d = deflated_sharpe(x, 1, 0.5)
    sr = x.mean() / x.std(ddof=1)
    z = (x - x.mean()) / x.std()
    skew, kurt = float(np.mean(z ** 3)), float(np.mean(z ** 4))
    want = NormalDist().cdf(sr * math.sqrt(1999) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr ** 2))
    assert d["sr0_bar"] == 0.0 and d["dsr"] == pytest.approx(want, rel=1e-12)


def test_expected_max_sharpe_grows_with_trials_and_matches_the_paper():
    # Bailey & Lopez de Prado (2014), eq. for E[max SR]: N = 100, V = 1 -> about 2.53
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.5306, abs=1e-3)
    vals = [expected_max_sharpe(n, 0.01) for n in (1, 2, 10, 100, 1000)]
    assert vals[0] == 0.0 and all(a < b for a, b in zip(vals, vals[1:], strict=False))
    with pytest.raises(ValueError):
        expected_max_sharpe(0, 1.0)


def test_more_trials_deflate_the_same_sharpe():
    x = np.random.default_rng(2).normal(0.0005, 0.01, 3000)
    few, many = deflated_sharpe(x, 2, 1e-4)["dsr"], deflated_sharpe(x, 200, 1e-4)["dsr"]
    assert many < few


def test_probabilistic_sharpe_is_nan_for_too_few_bars():
    assert math.isnan(probabilistic_sharpe(0.1, 0.0, 0.0, 3.0, 1))


def test_timing_of_a_constant_position_is_minus_its_costs():
    r = np.random.default_rng(3).normal(0.001, 0.01, 500)
    pos = np.ones(500)
    costs = np.zeros(500)
    costs[0] = 0.001
    t = timing_pnl(pos, r, costs)
    assert t.sum() == pytest.approx(-0.001)
    # a long-biased strategy in a rising market: its timing is its return minus the drift it holds
    pos2 = np.where(np.arange(500) % 3 == 0, -1.0, 1.0)
    t2 = timing_pnl(pos2, r, np.zeros(500))
    assert t2.sum() == pytest.approx((pos2 * r).sum() - pos2.mean() * r.sum())


def test_t_stat_and_consistency():
    assert t_stat(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0 / (1.0 / math.sqrt(3)))
    assert math.isnan(t_stat(np.array([1.0])))
    sub = subperiod_returns(np.array([1.0, -2.0, 3.0, 4.0, -1.0, -1.0, 2.0, 2.0]), 4)
    assert sub == [-1.0, 7.0, -2.0, 4.0] and positive_share(sub) == 0.5
    assert subperiod_returns(np.array([1.0]), 4) == [1.0]


def test_platt_recovers_a_known_calibration():
    rng = np.random.default_rng(4)
    raw = rng.uniform(0.3, 0.7, 50_000)
    a, b = 6.0, -3.2
    up = rng.uniform(size=raw.size) < 1 / (1 + np.exp(-(a * raw + b)))
    cal = fit_platt(raw, up)
    assert cal["a"] == pytest.approx(a, rel=0.1) and cal["b"] == pytest.approx(b, rel=0.1)
    assert not cal["flat"]
    p = apply_platt(raw, cal["a"], cal["b"])
    for row in reliability(p, up.astype(float)):
        if row["n"] > 2000:
            assert abs(row["observed"] - row["mean_p"]) < 0.03


def test_an_anti_predictive_model_is_flattened_not_turned_around():
    rng = np.random.default_rng(5)
    raw = rng.uniform(0.3, 0.7, 20_000)
    up = rng.uniform(size=raw.size) < 1.0 - raw         # higher raw -> fewer ups
    cal = fit_platt(raw, up)
    assert cal["flat"] and cal["a"] == 0.0
    p = apply_platt(raw, cal["a"], cal["b"])
    assert np.ptp(p) == 0.0 and p[0] == pytest.approx(up.mean(), abs=1e-6)


def test_identity_and_reach():
    raw = np.array([0.5, 0.6, 0.8, 0.95, np.nan])
    assert np.array_equal(apply_platt(raw, 1.0, 0.0), raw, equal_nan=True)
    assert confidence(raw).tolist() == pytest.approx([0.0, 0.2, 0.6, 0.9, 0.0])
    r = reach(raw, {"K": 0.3, "B": 0.4, "R": 0.95})
    assert r["K"]["bars"] == 2 and r["K"]["share"] == pytest.approx(0.4)
    assert r["R"]["reachable"] is False
    with pytest.raises(ValueError):
        fit_platt(np.ones(5), np.ones(5))
