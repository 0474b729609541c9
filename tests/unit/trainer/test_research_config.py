"""Issue 16 part 4 in the trainer: a horizon of 3 days, vol-scaled labels and a turnover budget
are configuration; the defaults leave every version as it was."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tm_common.models.bundle import Bundle
from tm_quant.features import BARS_PER_YEAR
from tm_quant.features.spec import INDEX
from tm_quant.labels import vol_scaled_return
from tm_trainer.config import TrainConfig
from tm_trainer.data import build_dataset, fit_garch_before
from tm_trainer.pipeline import load, train


def test_the_defaults_keep_the_digest_every_version_is_made_of():
    # the digests since the honest gates (deflated Sharpe, timing, consistency) joined GateConfig:
    # those change every bundle (calibration, gate record), so they change every version too;
    # the defaults of label and turnover leave it as it is
    assert TrainConfig().digest() == \
        "9f5a12204c620c7042ebf9f42ff29399ddc49da8ad90d6e6e8a4a2c083391201"
    assert TrainConfig().fast().digest() == \
        "2e9a520f4727288e2b845e0be0e7a21375e5fb371794508a19af9233fde9f909"
    assert not {"label", "turnover_budget_per_year", "turnover_band"} & set(TrainConfig().to_dict())
    assert TrainConfig(label="vol_scaled").digest() != TrainConfig().digest()
    assert TrainConfig(turnover_budget_per_year=52).digest() != TrainConfig().digest()


@pytest.mark.parametrize(("kw", "msg"), [({"label": "rank"}, "label must be one of"),
                                         ({"turnover_budget_per_year": -1}, "turnover budget"),
                                         ({"turnover_band": 0.5}, "turnover_band")])
def test_bad_settings_are_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kw)


def test_the_vol_scaled_label_is_what_a_family_is_fitted_on():
    cfg = TrainConfig(instruments=("ETHUSDT",), horizon_bars=18, label="vol_scaled")
    inputs = load(cfg)
    ds = build_dataset(inputs, cfg.instruments, 18,
                       {"ETHUSDT": fit_garch_before(inputs, "ETHUSDT", cfg.train_end_ms)},
                       cfg.label)
    d = ds.instruments["ETHUSDT"]
    want = vol_scaled_return(d.fwd, d.X[:, INDEX["rv_42"]], 18)
    assert np.array_equal(d.label, want, equal_nan=True)
    ok = np.isfinite(d.label)
    assert ok.sum() > 1000 and np.array_equal(np.sign(d.label[ok]), np.sign(d.fwd[ok]))


def test_a_3_day_horizon_with_a_turnover_budget_is_trained_gated_and_measured():
    cfg = replace(TrainConfig(instruments=("ETHUSDT",), horizon_bars=18, label="vol_scaled",
                              turnover_budget_per_year=52.0).fast(), n_windows=2)
    result = train(cfg, regime=False, family="trend")
    manifest = Bundle.from_bytes(result.signal_bytes).manifest
    assert manifest["horizon_bars"] == 18
    s = result.report["summary"]
    t = s["turnover"]
    n = s["n_oos_bars"]
    assert t["budget_per_year"] == 52.0 and t["hold_bars"] == 85
    assert t["smoothed_per_year"]["ETHUSDT"] <= 52.0 + 2 * BARS_PER_YEAR / n
    assert t["sign_strategy_per_year"]["ETHUSDT"] is not None
    # the gates judge the smoothed strategy's Sharpe
    sh = t["smoothed_sharpe"]
    assert any(f"{sh:.4f}" in r for r in result.reasons) == (sh <= 0.5)
    plain = train(replace(cfg, turnover_budget_per_year=None, label="log_return"), regime=False,
                  family="trend")
    assert "turnover" not in plain.report["summary"]
