"""Transfer learning: per-instrument boosters keep the pooled base trees and add new ones."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from tm_trainer.config import XgbConfig
from tm_trainer.model import booster_bytes, continue_training, load_booster, predict, train_instrument

CFG = XgbConfig(base_rounds=12, instrument_rounds=5, update_rounds=3, nthread=1, min_child_weight=5)


def _data(seed: int, n: int = 600, k: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values go down xgboost's default branch
    fwd = 0.5 * np.nan_to_num(X[:, 0]) + rng.normal(size=n)
    fwd[-6:] = np.nan  # unknown labels at the end are skipped
    return X, fwd


def test_instrument_model_extends_the_base_trees():
    data = {"A": _data(1), "B": _data(2), "C": _data(3)}
    base, inst = train_instrument(data, "B", CFG, seed=7)
    assert base.num_boosted_rounds() == CFG.base_rounds
    assert inst.num_boosted_rounds() == CFG.base_rounds + CFG.instrument_rounds
    base_dump, inst_dump = base.get_dump(dump_format="json"), inst.get_dump(dump_format="json")
    assert inst_dump[:CFG.base_rounds] == base_dump  # the base trees are kept, unchanged
    assert inst_dump[CFG.base_rounds:] != base_dump[:CFG.instrument_rounds]
    # the base booster itself was not modified by the continuation
    assert base.num_boosted_rounds() == CFG.base_rounds
    p = predict(inst, data["B"][0])
    assert p.shape == (600,) and ((p > 0) & (p < 1)).all()


def test_update_continues_from_a_loaded_production_booster():
    data = {"A": _data(1), "B": _data(2)}
    _, inst = train_instrument(data, "A", CFG, seed=7)
    prod = load_booster(booster_bytes(inst), nthread=1)
    X, fwd = _data(9, n=200)
    upd = continue_training(prod, X, fwd, CFG, 7, CFG.update_rounds)
    assert upd.num_boosted_rounds() == inst.num_boosted_rounds() + CFG.update_rounds
    assert upd.get_dump()[:inst.num_boosted_rounds()] == inst.get_dump()


def test_training_is_deterministic():
    data = {"A": _data(1), "B": _data(2)}
    a = booster_bytes(train_instrument(data, "A", CFG, seed=7)[1])
    b = booster_bytes(train_instrument(data, "A", CFG, seed=7)[1])
    assert a == b


def test_continuation_guard_trips_when_trees_would_be_lost(monkeypatch):
    data = {"A": _data(1)}
    base, _ = train_instrument(data, "A", CFG, seed=7)
    real_train = xgb.train
    # a continuation that (wrongly) starts from scratch must be caught
    monkeypatch.setattr(xgb, "train", lambda params, d, num_boost_round, xgb_model=None:
                        real_train(params, d, num_boost_round))
    with pytest.raises(AssertionError, match="base trees"):
        continue_training(base, *data["A"], CFG, 7, 3)
