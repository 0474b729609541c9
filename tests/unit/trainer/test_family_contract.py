"""The contract every registered signal model family must keep (parametrised over
``tm_quant.families.FAMILIES``, so a family you register is tested here without writing a test):

- ``fit`` is deterministic and returns numeric arrays that a bundle stores without pickle and
  that the family's own ``check`` accepts;
- ``predict`` gives one probability per row, in [0, 1], also for rows of missing values, and a
  row's value does not depend on the other rows (one row alone = the same bits as in a batch:
  the signal service predicts one row per bar, the trainer a window);
- trained by ``tm_trainer.pipeline.train`` on shipped data (a reduced configuration), its bundle
  loads in the signal service and serves the trainer's prediction for the same feature rows.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tm_common.models.bundle import Bundle, load_npz, npz_bytes
from tm_quant import families
from tm_quant.families import FAMILIES, SignalFamily, TrainRows
from tm_quant.features import FEATURE_NAMES
from tm_signal.domain.model import SignalModel
from tm_trainer.config import TrainConfig
from tm_trainer.holdout import bundle_predictions
from tm_trainer.pipeline import train

NAMES = sorted(FAMILIES)


def _rows(family: SignalFamily, n: int = 1500, seed: int = 0) -> TrainRows:
    feats = family.features or FEATURE_NAMES[:10]
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(feats)))
    X[rng.random(X.shape) < 0.05] = np.nan
    fwd = 0.3 * np.nan_to_num(X[:, 0]) + rng.logistic(size=n)
    return TrainRows(X, (fwd > 0).astype(np.int8), fwd, tuple(feats), "ETHUSDT", 7)


def check_fit(fam: SignalFamily) -> None:
    rows = _rows(fam)
    a, b = fam.fit(rows), fam.fit(rows)
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    stored = load_npz(npz_bytes(**a))                 # no pickle, same values back
    assert all(np.array_equal(stored[k], np.asarray(a[k])) for k in a)
    if fam.check is not None:
        fam.check(stored, rows.X.shape[1])


def check_predict(fam: SignalFamily) -> None:
    arrays = load_npz(npz_bytes(**fam.fit(_rows(fam))))
    X = _rows(fam, n=200, seed=1).X
    p = fam.predict(arrays, X)
    assert p.shape == (200,) and np.all((p >= 0) & (p <= 1))
    for i in (0, 17, 199):
        assert fam.predict(arrays, X[i:i + 1])[0] == p[i]
    perm = np.random.default_rng(2).permutation(200)
    assert np.array_equal(fam.predict(arrays, X[perm]), p[perm])
    missing = fam.predict(arrays, np.full((1, X.shape[1]), np.nan))
    assert missing.shape == (1,) and 0.0 <= missing[0] <= 1.0


def check_pipeline(name: str) -> None:
    """Train ``name`` (registered) on shipped data; the service serves the trainer's numbers."""
    assert name in families.FAMILIES
    cfg = replace(TrainConfig(instruments=("ETHUSDT",)).fast(), n_windows=2)
    result = train(cfg, regime=False, family=name)
    bundle = Bundle.from_bytes(result.signal_bytes)
    assert bundle.manifest["family"] == name and result.params["family"] == name
    ds, rows, probs = bundle_predictions(bundle, end_ms=cfg.train_end_ms + 60 * 4 * 3_600_000)
    assert rows.size == 60
    im = SignalModel.from_manifest(bundle.manifest, bundle.files).instruments["ETHUSDT"]
    served = np.array([im.predict(x) for x in ds.instruments["ETHUSDT"].X[rows]])
    assert np.array_equal(served, probs["ETHUSDT"])


@pytest.mark.parametrize("name", NAMES)
def test_fit_is_deterministic_and_its_arrays_are_storable_and_accepted(name):
    check_fit(FAMILIES[name])


@pytest.mark.parametrize("name", NAMES)
def test_predict_is_a_probability_per_row_independent_of_the_other_rows(name):
    check_predict(FAMILIES[name])


@pytest.mark.parametrize("name", NAMES)
def test_trained_by_the_pipeline_it_loads_and_serves_the_trainers_prediction(name):
    check_pipeline(name)
