"""Same seed and data → byte-identical bundles and identical metrics; another seed differs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tm_common.models.bundle import Bundle
from tm_trainer.pipeline import train


@pytest.fixture(scope="module")
def runs(random_walk_dir):
    from tm_trainer.config import BorutaConfig, TrainConfig, XgbConfig
    cfg = TrainConfig(history_dir=random_walk_dir, instruments=("ETHUSDT",), n_windows=2,
                      min_train_bars=600, regime_restarts=1,
                      xgb=XgbConfig(base_rounds=10, instrument_rounds=4, min_child_weight=20),
                      boruta=BorutaConfig(max_iter=4, n_iter_no_change=2, max_rows=400))
    return train(cfg), train(cfg), train(replace(cfg, seed=cfg.seed + 1), regime=False)


def test_same_seed_same_bytes_and_metrics(runs):
    a, b, _ = runs
    assert a.signal_bytes == b.signal_bytes
    assert a.regime["bytes"] == b.regime["bytes"]
    assert a.metrics == b.metrics and a.regime["metrics"] == b.regime["metrics"]
    assert a.signal_version == b.signal_version and a.data_hash == b.data_hash


def test_bundle_is_complete(runs):
    a = runs[0]
    bundle = Bundle.from_bytes(a.signal_bytes)
    m = bundle.manifest
    assert m["kind"] == "signal" and m["horizon_bars"] == 6 and set(m["instruments"]) == {"ETHUSDT"}
    for spec in m["instruments"].values():
        assert 9 <= len(spec["features"]) <= 13
        cal = a.report["honest"]["calibration"]   # Platt, fitted on the OOS predictions
        assert spec["prob_calibration"] == {"a": cal["a"], "b": cal["b"]}
        assert set(spec["boruta"]["confirmed"]) | set(spec["boruta"]["filled_by_ranking"]) == \
            set(spec["features"])
    assert m["metrics"]["gate"]["passed"] == a.gate_passed
    assert bundle.json("walkforward.json")["summary"] == a.report["summary"]
    assert Bundle.from_bytes(a.regime["bytes"]).kind == "regime"


def test_another_seed_gives_another_model(runs):
    a, _, c = runs
    assert c.signal_bytes != a.signal_bytes and c.signal_version != a.signal_version
