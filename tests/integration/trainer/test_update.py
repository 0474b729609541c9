"""Weekly update: continues the production boosters (base trees kept), scores itself only on
windows after the production cut-off plus the purge, refuses when there are none."""

from __future__ import annotations

from dataclasses import replace

import pytest
import xgboost as xgb
from tm_common.models.bundle import Bundle
from tm_quant.features.spec import BAR_MS
from tm_trainer.data import DataError
from tm_trainer.pipeline import train
from tm_trainer.synthetic import START_MS
from tm_trainer.update import train_update


@pytest.fixture(scope="module")
def parent(random_walk_dir):
    from tm_trainer.config import BorutaConfig, TrainConfig, XgbConfig
    cfg = TrainConfig(history_dir=random_walk_dir, instruments=("BTCUSDT",), n_windows=1,
                      min_train_bars=600, train_end_ms=START_MS + 1900 * BAR_MS,
                      xgb=XgbConfig(base_rounds=8, instrument_rounds=4, update_rounds=3,
                                    min_child_weight=20),
                      boruta=BorutaConfig(max_iter=4, n_iter_no_change=2, max_rows=400))
    return cfg, Bundle.from_bytes(train(cfg, regime=False).signal_bytes)


def _rounds(bundle: Bundle, sym: str = "BTCUSDT") -> int:
    return xgb.Booster(model_file=bundle.booster_bytes(f"{sym}.ubj")).num_boosted_rounds()


def test_update_adds_trees_to_production_and_scores_only_later_windows(parent):
    cfg, prod = parent
    new_cfg = replace(cfg, train_end_ms=START_MS + 2400 * BAR_MS, n_windows=40)
    res = train_update(new_cfg, prod)
    upd = Bundle.from_bytes(res.signal_bytes)
    assert res.parent_version == prod.version and upd.manifest["parent_version"] == prod.version
    assert _rounds(upd) == _rounds(prod) + cfg.xgb.update_rounds
    old = xgb.Booster(model_file=prod.booster_bytes("BTCUSDT.ubj")).get_dump()
    assert xgb.Booster(model_file=upd.booster_bytes("BTCUSDT.ubj")).get_dump()[:len(old)] == old
    spec, pspec = upd.manifest["instruments"]["BTCUSDT"], prod.manifest["instruments"]["BTCUSDT"]
    assert spec["features"] == pspec["features"] and spec["garch"] == pspec["garch"]
    # 500 new bars: (500 - 206) // 42 = 7 windows, all starting after cut-off + purge + horizon
    assert res.report["summary"]["n_windows"] == 7
    first_test = res.report["windows"][0]["test_start_ms"]
    assert first_test >= prod.manifest["train_end_ms"] + (cfg.purge_bars + cfg.horizon_bars) * BAR_MS
    assert train_update(new_cfg, prod).signal_bytes == res.signal_bytes  # reproducible


def test_update_too_soon_is_refused_with_the_reason(parent):
    cfg, prod = parent
    res = train_update(replace(cfg, train_end_ms=prod.manifest["train_end_ms"] + 42 * BAR_MS), prod)
    assert not res.gate_passed and "no OOS window" in res.reasons[0]
    with pytest.raises(DataError, match="after the production cut-off"):
        train_update(cfg, prod)
