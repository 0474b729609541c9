"""OOS metrics and gates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tm_trainer.evaluate import gate, hit_rate, sharpe, strategy_pnl, summarise


def test_strategy_pnl_charges_costs_per_unit_of_position_change():
    score = np.array([0.1, 0.2, -0.3, -0.1, 0.0])
    ret = np.array([0.01, -0.02, 0.03, 0.01, 0.05])
    pnl = strategy_pnl(score, ret, 0.001)
    # positions 1, 1, -1, -1, 0; turnover 1, 0, 2, 0, 1
    np.testing.assert_allclose(pnl, [0.01 - 0.001, -0.02, -0.03 - 0.002, -0.01, 0.0 - 0.001])


def test_sharpe_annualised_from_4h_bars():
    pnl = np.array([0.01, -0.005, 0.002, 0.004])
    assert sharpe(pnl) == pytest.approx(pnl.mean() / pnl.std(ddof=1) * math.sqrt(6 * 365))
    assert sharpe(np.zeros(5)) == 0.0 and math.isnan(sharpe(np.ones(1)))


def test_hit_rate_ignores_zeros():
    assert hit_rate(np.array([1, -1, 0, 1]), np.array([2, 3, 1, 0])) == 0.5


def test_gate_reasons():
    ok, why = gate({"mean_ic": 0.05, "sharpe": 0.8}, 0.03, 0.5)
    assert ok and why == []
    ok, why = gate({"mean_ic": 0.01, "sharpe": 0.5}, 0.03, 0.5)
    assert not ok and len(why) == 2 and "IC" in why[0] and "Sharpe" in why[1]
    assert not gate({"mean_ic": None, "sharpe": None}, 0.03, 0.5)[0]


def test_summary_of_a_perfect_forecaster_and_its_baseline():
    rng = np.random.default_rng(0)
    fwd = rng.normal(0, 0.01, 400)
    ret_next = fwd.copy()
    p = 0.5 + np.sign(fwd) * 0.1
    mom = -np.sign(fwd)  # always wrong
    series = {"X": {"p": p, "momentum": mom, "fwd": fwd, "ret_next": ret_next}}
    windows = [{"window": 0, "instruments": {"X": {"ic": 0.8, "baseline_ic": -0.8}}}]
    s = summarise(windows, series, 0.00075)
    assert s["hit_rate"] == 1.0 and s["baseline_hit_rate"] == 0.0
    assert s["sharpe"] > 10 > -10 > s["baseline_sharpe"]
    assert s["mean_window_ic"] == 0.8  # the mean of the windows' ICs, reported
    assert s["mean_ic"] == s["instruments"]["X"]["ic"] > 0.8  # the gate's: pooled over OOS bars
    assert s["baseline_mean_ic"] < -0.8
