"""Boruta selection: 9-13 features, informative ones found, training rows only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tm_trainer.config import BorutaConfig
from tm_trainer.selection import boruta_select, candidate_columns

CFG = BorutaConfig(max_iter=12, n_iter_no_change=5, max_rows=800)


def _data(seed=0, n=800, k=20):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    y = (X[:, 3] + X[:, 7] + 0.5 * rng.normal(size=n)) > 0
    X[:50, 11] = np.nan  # warm-up style gap, allowed
    X[:, 15] = np.nan  # a feature with no data (e.g. BTC cross for BTC): never a candidate
    return X, y, [f"f{j}" for j in range(k)]


def test_keeps_between_9_and_13_and_finds_the_signal():
    X, y, names = _data()
    sel = boruta_select(X, y, names, CFG, seed=3, nthread=1)
    assert 9 <= len(sel) <= 13
    assert "f3" in sel and "f7" in sel and "f15" not in sel
    assert sel == [n for n in names if n in sel]  # column order = FEATURE_NAMES order
    assert boruta_select(X, y, names, CFG, seed=3, nthread=1) == sel  # seeded


def test_caps_at_max_features_by_ranking():
    X, y, names = _data()  # f3 and f7 are confirmed: a cap of 1 keeps one of them
    sel = boruta_select(X, y, names, replace(CFG, min_features=1, max_features=1), seed=3, nthread=1)
    assert len(sel) == 1 and sel[0] in ("f3", "f7")


def test_fills_up_to_min_features_by_ranking():
    X, _, names = _data()
    y = X[:, :6].sum(axis=1) > 0  # six informative features; fewer are confirmed in 12 rounds
    sel = boruta_select(X, y, names, replace(CFG, min_features=5, max_features=5), seed=3, nthread=1)
    assert len(sel) == 5 and set(sel) <= {f"f{j}" for j in range(6)}


def test_candidates_and_errors():
    X, y, names = _data()
    assert 15 not in candidate_columns(X, 0.5) and 11 in candidate_columns(X, 0.5)
    with pytest.raises(ValueError, match="single label"):
        boruta_select(X, np.zeros(800, dtype=bool), names, CFG, seed=1, nthread=1)
    with pytest.raises(ValueError, match="usable"):
        boruta_select(X[:, :5], y, names[:5], CFG, seed=1, nthread=1)
