"""Trainer integration fixtures: synthetic random-walk history and a small training
configuration. The databases (``pg_url``, ``sqlite_url``, ``db_url``) are those of
``tests/integration/conftest.py``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from tm_trainer.config import BorutaConfig, TrainConfig, XgbConfig
from tm_trainer.synthetic import write_random_walk_history


@pytest.fixture(scope="session")
def random_walk_dir(tmp_path_factory):
    """Seeded random-walk history (BTCUSDT, ETHUSDT; 2400 bars from 2022-01-01)."""
    return write_random_walk_history(tmp_path_factory.mktemp("rw"), seed=20240611, n_bars=2400)


def _small_config(history_dir, **kw) -> TrainConfig:
    cfg = TrainConfig(history_dir=history_dir, n_windows=4, min_train_bars=600, regime_restarts=1,
                      xgb=XgbConfig(base_rounds=15, instrument_rounds=6, update_rounds=4,
                                    min_child_weight=20),
                      boruta=BorutaConfig(max_iter=6, n_iter_no_change=3, max_rows=600,
                                          reselect_every=8))
    return replace(cfg, **kw)


@pytest.fixture
def small_config():
    """Factory ``small_config(history_dir, **overrides)``: a seconds-scale configuration (4 windows,
    tiny trees, a short Boruta, one HMM restart)."""
    return _small_config
