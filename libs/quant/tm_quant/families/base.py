"""What a signal model family is: a name, a fit and a numpy predictor (no I/O, no pickles).

A family is the part of a signal model that differs from the built-in one: how the arrays are
fitted on training rows and how P(up) is computed from them. Everything else is the platform's
and the same for every family: the walk-forward splits and purge gap, the label (forward log
return over the horizon > 0), the features (:mod:`tm_quant.features`), the OOS report, the gates,
the costs, the bundle, the registry, shadow books and promotion.

The two functions:

- ``fit(rows: TrainRows) -> dict[str, np.ndarray]``: called once per walk-forward window and
  instrument (and once more per instrument for the final model) with that window's training rows
  only. Returns named numeric arrays (no object dtype: they are stored in an ``.npz`` read with
  ``allow_pickle=False``). It runs in the trainer only, so it may import anything installed
  there; it must be deterministic for a given ``rows.seed``.
- ``predict(arrays, X) -> np.ndarray``: P(forward return over the horizon > 0) in [0, 1] for each
  row of ``X`` (``(m, k)`` float64, columns = the family's features in order, NaN = missing:
  warm-up of a side series, a stale input withheld, BTC cross features of BTC itself). Pure
  numpy: the signal service calls it with one row per bar, the trainer with a window's rows; a
  row's result must not depend on the other rows (reduce along ``axis=1`` per row, not with a
  matrix product, and the two paths agree bit for bit).

``check(arrays, n_features)`` (optional) refuses arrays the predictor cannot use (missing names,
wrong shapes, non-finite values) with a ``ValueError`` naming the problem; the signal service runs
it when it loads a bundle, so a bad bundle is refused at load time, not on the first bar.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from tm_quant.features.spec import FEATURE_NAMES

#: The built-in family (transfer-learning XGBoost: ``tm_trainer.model``, served by the signal
#: service's booster / compiled-forest path). Not in :data:`tm_quant.families.FAMILIES`.
BUILTIN = "xgboost"
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class TrainRows:
    """The training rows of one instrument in one window (oldest first).

    Attributes:
        X: ``(n, k)`` float64 features, columns = ``features``; NaN = missing.
        y: ``(n,)`` int8 label, 1 when ``fwd > 0``.
        fwd: ``(n,)`` forward log return over the horizon (finite on every row given).
        features: the k column names.
        symbol: the instrument (e.g. ``"ETHUSDT"``).
        seed: the run's seed (``tm train --seed``).
    """

    X: np.ndarray
    y: np.ndarray
    fwd: np.ndarray
    features: tuple[str, ...]
    symbol: str
    seed: int


FitFn = Callable[[TrainRows], Arrays]
PredictFn = Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]
CheckFn = Callable[[Mapping[str, np.ndarray], int], None]


@dataclass(frozen=True)
class SignalFamily:
    """A registered signal model family (see the module docstring for the two functions).

    Attributes:
        name: the registered name (``tm train --family NAME``; recorded in the bundle manifest as
            ``family``): 2-32 characters ``[a-z0-9_]``, starting with a letter, not ``xgboost``.
        fit: training rows → arrays (trainer only).
        predict: arrays and feature rows → P(up) per row (numpy only; trainer and service).
        features: a fixed feature list (names from ``FEATURE_NAMES``), or None for the built-in
            selection: Boruta on every window's training rows (re-run every
            ``BorutaConfig.reselect_every`` windows), as the built-in family does.
        check: optional validation of loaded arrays (``ValueError`` when unusable).
        summary: one line for ``tm train --help`` and the docs.
    """

    name: str
    fit: FitFn
    predict: PredictFn
    features: tuple[str, ...] | None = None
    check: CheckFn | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name == BUILTIN:
            raise ValueError(f"signal family name {self.name!r}: 2-32 characters [a-z0-9_], "
                             f"starting with a letter, and not {BUILTIN!r}")
        if self.features is not None:
            unknown = [f for f in self.features if f not in FEATURE_NAMES]
            if not self.features or unknown or len(set(self.features)) != len(self.features):
                raise ValueError(f"signal family {self.name!r}: features must be distinct names "
                                 f"from tm_quant.features.FEATURE_NAMES (unknown: {unknown})")
