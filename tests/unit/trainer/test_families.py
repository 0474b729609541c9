"""A signal model family goes through the built-in walk-forward: the same splits, purge, warm rows,
labels and scoring; only fit and predict are the family's. What a family returns is checked in
the trainer, with the family's name in the message."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tm_quant.families import SignalFamily, logistic
from tm_quant.features.spec import INDEX, WARMUP_BARS
from tm_trainer.config import TrainConfig
from tm_trainer.data import build_dataset, fit_garch_before
from tm_trainer.evaluate import score_block
from tm_trainer.families import FamilyError, family_fit_predict, fit_arrays, predict_rows
from tm_trainer.pipeline import load, plan_splits, train
from tm_trainer.walkforward import run_walkforward

SYMS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="module")
def setup():
    cfg = replace(TrainConfig(instruments=SYMS).fast(), n_windows=3)
    inputs = load(cfg)
    splits = plan_splits(inputs, cfg)
    cut = int(build_dataset(inputs, SYMS, cfg.horizon_bars, {
        s: fit_garch_before(inputs, s, cfg.train_end_ms) for s in SYMS}).ts[splits[0].train.size])
    ds = build_dataset(inputs, SYMS, cfg.horizon_bars,
                       {s: fit_garch_before(inputs, s, cut) for s in SYMS})
    return cfg, splits, ds


def test_the_family_sees_each_windows_training_rows_and_predicts_its_test_rows(setup):
    cfg, splits, ds = setup
    calls: list[tuple[str, int, int, tuple[str, ...]]] = []

    def fit(rows):
        calls.append((rows.symbol, rows.X.shape[0], rows.seed, rows.features))
        assert np.all(np.isfinite(rows.fwd)) and np.array_equal(rows.y, rows.fwd > 0)
        return {"last_fwd": np.array([rows.fwd[-1]])}

    def predict(arrays, X):
        return np.full(X.shape[0], 0.6)

    fam = SignalFamily("recorder", fit, predict, features=("ret_1", "rsi_14"))
    report = run_walkforward(ds, cfg, splits, fit_predict=family_fit_predict(fam, cfg.seed),
                             features=fam.features)
    assert len(calls) == len(splits) * len(SYMS)
    for k, sp in enumerate(splits):
        warm = sp.train[sp.train >= WARMUP_BARS - 1]
        for j, s in enumerate(SYMS):
            sym, n, seed, feats = calls[k * len(SYMS) + j]
            assert (sym, seed, feats) == (s, cfg.seed, ("ret_1", "rsi_14"))
            assert n == int(np.isfinite(ds.instruments[s].fwd[warm]).sum())
            # the last training label is known before the purged test window starts
            assert warm.max() + cfg.horizon_bars + cfg.purge_bars < sp.test.min()
            d = ds.instruments[s]
            want = score_block(np.full(sp.test.size, 0.6), d.X[sp.test, INDEX["ret_42"]], d.fwd[sp.test],
                               d.ret_next[sp.test], cfg.costs.per_unit)
            assert report["windows"][k]["instruments"][s]["return"] == want["return"]
    assert report["selections"] == {s: [[0, ["ret_1", "rsi_14"]]] for s in SYMS}
    assert report["summary"]["n_windows"] == len(splits)


def test_the_example_family_trains_a_bundle_with_its_arrays():
    cfg = replace(TrainConfig(instruments=("ETHUSDT",)).fast(), n_windows=2)
    r = train(cfg, regime=False, family="logistic")
    assert r.family == "logistic" and r.signal_version.startswith("signal-logistic-")
    assert r.params["family"] == "logistic" and "xgb_params" not in r.params
    assert r.metrics["family"] == "logistic" and r.report["family"] == "logistic"
    assert r.report["summary"]["n_windows"] == 2
    from tm_common.models.bundle import Bundle
    b = Bundle.from_bytes(r.signal_bytes)
    assert b.manifest["family"] == "logistic" and set(b.files) == {"ETHUSDT.npz",
                                                                    "walkforward.json"}
    spec = b.manifest["instruments"]["ETHUSDT"]
    assert spec["features"] == list(logistic.FEATURES) and spec["model"] == "ETHUSDT.npz"
    logistic.check(b.npz("ETHUSDT.npz"), len(logistic.FEATURES))
    assert b.manifest["metrics"]["gate"]["passed"] == r.gate_passed
    again = train(cfg, regime=False, family="logistic")
    assert again.signal_bytes == r.signal_bytes            # deterministic


def test_an_unknown_family_is_refused_before_any_work():
    from tm_quant.families import UnknownFamily
    with pytest.raises(UnknownFamily, match="unknown signal family 'nope'"):
        train(TrainConfig(instruments=("ETHUSDT",)).fast(), regime=False, family="nope")


def _fam(fit=None, predict=None):
    return SignalFamily("broken", fit or (lambda rows: {"w": np.zeros(2)}),
                        predict or (lambda a, X: np.full(X.shape[0], 0.5)))


@pytest.mark.parametrize("ret, needle", [
    ({}, "fit must return a non-empty dict"),
    ({"w": np.array(["a"], dtype=object)}, "'w' of dtype object"),
    ({"not ok": np.zeros(1)}, "names must be identifiers"),
])
def test_what_fit_returns_is_checked(ret, needle):
    X, fwd = np.zeros((5, 2)), np.arange(5.0) - 2
    with pytest.raises(FamilyError, match=f"family 'broken': .*{needle}"):
        fit_arrays(_fam(fit=lambda rows: ret), X, fwd, ("a", "b"), "ETHUSDT", 1)


@pytest.mark.parametrize("out, needle", [
    (lambda X: np.zeros((X.shape[0], 1)), r"shape \(4, 1\) for 4 rows"),
    (lambda X: np.full(X.shape[0], 1.5), r"values outside \[0, 1\]"),
])
def test_what_predict_returns_is_checked(out, needle):
    with pytest.raises(FamilyError, match=f"family 'broken': predict returned {needle}"):
        predict_rows(_fam(predict=lambda a, X: out(X)), {}, np.zeros((4, 2)))


def test_a_weekly_update_refuses_a_family_parent():
    from tm_common.models.bundle import Bundle
    from tm_trainer.data import DataError
    from tm_trainer.update import train_update

    cfg = replace(TrainConfig(instruments=("ETHUSDT",)).fast(), n_windows=1)
    parent = Bundle.from_bytes(train(cfg, regime=False, family="logistic").signal_bytes)
    later = replace(cfg, train_end_ms=cfg.train_end_ms + 30 * 86_400_000)
    with pytest.raises(DataError, match="is of family 'logistic': --update continues xgboost "
                                        "boosters; retrain it with `tm train --family logistic`"):
        train_update(later, parent)
