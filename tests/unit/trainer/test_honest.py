"""The honest parts of a training run: the calibration fitted on OOS predictions and stored in the
bundle, the reliability curve and tier reach in the report, the trial count on the same data
deflating the Sharpe, and Boruta's confirmed features told apart from those filled by ranking."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tm_common.models.bundle import Bundle
from tm_quant.calibration import apply_platt, fit_platt
from tm_trainer.config import BorutaConfig, TrainConfig
from tm_trainer.honest import PriorTrial, Trials, honest_gates
from tm_trainer.pipeline import prior_trials_of, train
from tm_trainer.selection import boruta_selection


@pytest.fixture(scope="module")
def run():
    cfg = replace(TrainConfig(instruments=("ETHUSDT",)).fast(), n_windows=4)
    return cfg, train(cfg, regime=False, family="logistic")


def test_the_bundle_carries_the_calibration_fitted_on_the_oos_predictions(run):
    cfg, r = run
    h = r.report["honest"]
    cal = h["calibration"]
    assert (cal["a"], cal["b"]) != (1.0, 0.0) and cal["n"] > 100
    spec = Bundle.from_bytes(r.signal_bytes).manifest["instruments"]["ETHUSDT"]
    assert spec["prob_calibration"] == {"a": cal["a"], "b": cal["b"]}
    assert cal["n"] == sum(b["instruments"]["ETHUSDT"]["n"] for b in r.report["windows"])
    assert sum(b["n"] for b in h["reliability"]) == cal["n"]
    assert set(h["threshold_reach"]) == {"PURE_KELLY", "BLENDED", "FULL_RL"}
    for name, v in h["threshold_reach"].items():
        assert v["reachable"] == (name not in h["unreachable_tiers"])
    assert r.metrics["calibration"] == cal


def test_the_gates_are_recorded_and_one_trial_is_counted(run):
    _, r = run
    d = r.report["deflated_sharpe"]
    assert d["n_trials"] == 1 and d["sr0_bar"] == 0.0
    for key in ("dsr", "n_trials", "timing_t", "positive_share"):
        assert key in r.metrics
    g = Bundle.from_bytes(r.signal_bytes).manifest["metrics"]["gate"]
    assert g["passed"] == r.gate_passed and g["deflated_sharpe"] == d
    assert r.params["trial_key"] == d["trial_key"]


def test_more_trials_on_the_same_data_deflate_the_same_run(run):
    cfg, r = run
    key = r.params["trial_key"]
    h = r.report["honest"]
    one, _ = honest_gates(h, cfg.gates, Trials(key, 1, 0.0))
    many, reasons = honest_gates(h, cfg.gates, Trials(key, 50, 0.01 ** 2))
    assert many["dsr"] < one["dsr"] and any("50 trials" in x for x in reasons)


def test_trials_count_other_configurations_on_the_same_data_only(run):
    _, r = run
    key, me = r.params["trial_key"], r.params["trial_id"]
    prior = [PriorTrial(key, "a", 1.0), PriorTrial(key, "b", -0.5), PriorTrial(key, "a", 1.0),
             PriorTrial(key, me, 0.3), PriorTrial("other-data", "c", 2.0)]
    t = Trials.count(key, me, 0.2, prior)
    assert t.n == 3                      # a, b and this one; a re-run of this one is not new
    srs = np.array([1.0, -0.5, 0.2]) / np.sqrt(6 * 365)
    assert t.sharpe_variance == pytest.approx(float(np.var(srs, ddof=1)))


def test_a_run_after_other_trials_is_gated_with_their_count(run):
    cfg, r = run

    class Rec:
        kind = "signal"

        def __init__(self, tid, sharpe):
            self.params = {"trial_key": r.params["trial_key"], "trial_id": tid}
            self.metrics = {"sharpe": sharpe}

    prior = prior_trials_of([Rec("x1", 0.8), Rec("x2", -0.4), Rec("x3", 0.1)])
    r2 = train(cfg, regime=False, family="logistic", prior_trials=prior)
    assert r2.report["deflated_sharpe"]["n_trials"] == 4
    assert r2.signal_version != r.signal_version     # the bundle records another count
    assert r2.report["summary"] == r.report["summary"]


def test_boruta_says_what_it_confirmed_and_what_ranking_filled():
    rng = np.random.default_rng(0)
    n, k = 1500, 14
    names = [f"f{j}" for j in range(k)]
    X = rng.standard_normal((n, k))
    cfg = BorutaConfig(min_features=3, max_features=6, max_iter=30, n_iter_no_change=20,
                       n_estimators=30)
    informative = X[:, 2] + 0.3 * rng.standard_normal(n) > 0
    sel = boruta_selection(X, informative, names, cfg, seed=1, nthread=1)
    assert "f2" in sel.confirmed and set(sel.selected) == set(sel.confirmed) | set(sel.filled)
    noise = boruta_selection(X, rng.uniform(size=n) > 0.5, names, cfg, seed=1, nthread=1)
    assert noise.confirmed == [] and len(noise.filled) == 3
    assert noise.to_dict()["none_confirmed"] is True


def test_platt_on_the_identity_keeps_probabilities():
    raw = np.linspace(0.2, 0.8, 100)
    fitted = fit_platt(raw, raw > 0.5)
    assert fitted["a"] > 0 and np.all(np.diff(apply_platt(raw, fitted["a"], fitted["b"])) >= 0)


def test_the_forward_reach_uses_a_calibration_fitted_on_earlier_blocks_only():
    from tm_trainer.honest import forward_calibrated

    rng = np.random.default_rng(3)
    n = 400
    series = {s: {"p": rng.uniform(0.3, 0.7, n), "fwd": rng.normal(size=n)} for s in ("A", "B")}
    p, up = forward_calibrated(series, 2)
    first = {s: d["p"][:200] for s, d in series.items()}
    cal = fit_platt(np.concatenate(list(first.values())),
                    np.concatenate([d["fwd"][:200] > 0 for d in series.values()]))
    want = np.concatenate([apply_platt(d["p"][200:], cal["a"], cal["b"]) for d in series.values()])
    assert p.size == 400 and np.allclose(p, want)
    # changing the last block's outcomes changes nothing in its own calibrated p
    series["A"]["fwd"][200:] *= -1
    p2, _ = forward_calibrated(series, 2)
    assert np.array_equal(p, p2)
