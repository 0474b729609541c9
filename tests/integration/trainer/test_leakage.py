"""Invariant 5 on the whole pipeline: on a random walk the walk-forward finds no edge, the gates
refuse, and a deliberately leaked feature is caught by the same check (so it can fail)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from tm_quant.features.spec import INDEX
from tm_trainer.data import build_dataset, common_timeline, fit_garch_before
from tm_trainer.evaluate import gate
from tm_trainer.pipeline import load, plan_splits
from tm_trainer.synthetic import write_random_walk_history
from tm_trainer.walkforward import run_walkforward


def _walkforward(cfg, leak: bool = False):
    inputs = load(cfg)
    splits = plan_splits(inputs, cfg)
    cut = int(common_timeline(inputs, cfg.instruments)[splits[0].train.size])
    ds = build_dataset(inputs, cfg.instruments, cfg.horizon_bars,
                       {s: fit_garch_before(inputs, s, cut) for s in cfg.instruments})
    if leak:  # the bug this test exists to catch: a feature that knows the label
        for d in ds.instruments.values():
            d.X[:, INDEX["ret_1"]] = d.fwd
    return run_walkforward(ds, cfg, splits)


def ic_bound(summary, horizon: int, k: float = 3.0) -> float:
    """k standard errors of the gate's IC (mean over instruments of the pooled OOS Spearman) under
    no edge: with h-bar overlapping labels about n/h observations per instrument are independent,
    so se ≈ sqrt(h / (n * instruments)). 40 windows × 42 bars, 2 instruments, h = 6: 0.042, the
    bound 0.127. Never below 0.05."""
    n, m = summary["n_oos_bars"], len(summary["instruments"])
    return max(0.05, k * math.sqrt(horizon / (n * m)))


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    from tm_trainer.config import BorutaConfig, TrainConfig, XgbConfig
    history = write_random_walk_history(tmp_path_factory.mktemp("rw_long"), seed=777, n_bars=3300)
    return TrainConfig(history_dir=history, instruments=("BTCUSDT", "ETHUSDT"), n_windows=40,
                       min_train_bars=600,
                       xgb=XgbConfig(base_rounds=15, instrument_rounds=6, min_child_weight=20),
                       boruta=BorutaConfig(max_iter=6, n_iter_no_change=3, max_rows=600,
                                           reselect_every=20))


def test_random_walk_has_no_oos_edge_and_gates_refuse(cfg):
    s = _walkforward(cfg)["summary"]
    assert s["n_windows"] == 40 and s["n_oos_bars"] >= 40 * 42 - 1
    bound = ic_bound(s, cfg.horizon_bars)
    assert abs(s["mean_ic"]) < bound, f"OOS IC {s['mean_ic']} on a random walk (bound {bound:.3f})"
    for sym, m in s["instruments"].items():
        assert abs(m["ic"]) < ic_bound({**s, "instruments": {sym: m}}, cfg.horizon_bars), (sym, m)
    assert abs(s["hit_rate"] - 0.5) < 0.06  # a coin flip, give or take 2.5 se
    passed, reasons = gate(s, cfg.gates.min_ic, cfg.gates.min_sharpe)
    assert not passed and reasons


def test_a_leaked_label_is_detected_by_the_same_check(cfg):
    report = _walkforward(replace(cfg, n_windows=8), leak=True)
    s = report["summary"]
    assert s["mean_ic"] > ic_bound(s, cfg.horizon_bars) and s["mean_ic"] > 0.5
    assert all("ret_1" in sel for sels in report["selections"].values() for _, sel in sels)
