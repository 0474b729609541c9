"""Training a registered signal model family (``tm train --family NAME``, :mod:`tm_quant.families`).

The family supplies two functions (fit: training rows → arrays; predict: arrays + feature rows →
P(up)); everything around them is :func:`tm_trainer.pipeline.train`'s and the same as for the
built-in family: the splits, the purge, the warm rows, the label ``fwd > 0``, the features, Boruta
(unless the family fixes its features), the OOS report, the gates and the costs. This module
adapts the two functions to that loop and checks what they return, so a broken family fails in
the trainer with its name in the message, never in the signal service.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from tm_common.errors import TradeMatrixError
from tm_common.models.bundle import BundleError, npz_bytes
from tm_quant import families
from tm_quant.families import BUILTIN, SignalFamily, TrainRows

from tm_trainer.data import Dataset
from tm_trainer.walkforward import FitPredict


class FamilyError(TradeMatrixError, ValueError):
    """A family's fit or predict returned something the platform cannot use."""


def resolve(name: str) -> SignalFamily | None:
    """The registered family ``name``; None for the built-in ``xgboost``.

    Raises:
        UnknownFamily: not registered (the message lists the known names).
    """
    return None if name == BUILTIN else families.get(name)


def fit_arrays(family: SignalFamily, X: np.ndarray, fwd: np.ndarray, features: tuple[str, ...],
               symbol: str, seed: int) -> dict[str, np.ndarray]:
    """``family.fit`` on rows with a finite label; the arrays checked (numeric, storable without
    pickle, accepted by ``family.check``)."""
    ok = np.isfinite(fwd)
    rows = TrainRows(X=np.ascontiguousarray(X[ok], dtype=np.float64),
                     y=(fwd[ok] > 0).astype(np.int8), fwd=np.asarray(fwd[ok], dtype=np.float64),
                     features=features, symbol=symbol, seed=seed)
    raw = family.fit(rows)
    if not isinstance(raw, Mapping) or not raw:
        raise FamilyError(f"family {family.name!r}: fit must return a non-empty dict of arrays")
    arrays = {}
    for k, v in raw.items():
        a = np.asarray(v)
        if not isinstance(k, str) or not k.isidentifier() or a.dtype.kind not in "biuf":
            raise FamilyError(f"family {family.name!r}: fit returned {k!r} of dtype {a.dtype}; "
                              "names must be identifiers, arrays bool/int/float")
        arrays[k] = a
    if family.check is not None:
        try:
            family.check(arrays, len(features))
        except ValueError as e:
            raise FamilyError(f"family {family.name!r}: its check refuses its own fit "
                              f"({symbol}): {e}") from e
    return arrays


def predict_rows(family: SignalFamily, arrays: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """``family.predict`` over rows ``X``; the result checked to be ``(m,)`` values in [0, 1]
    (NaN allowed: the service then emits a zero-confidence signal)."""
    if X.shape[0] == 0:
        return np.zeros(0)
    p = np.asarray(family.predict(arrays, np.ascontiguousarray(X, dtype=np.float64)),
                   dtype=np.float64)
    if p.shape != (X.shape[0],):
        raise FamilyError(f"family {family.name!r}: predict returned shape {p.shape} for "
                          f"{X.shape[0]} rows (expected ({X.shape[0]},))")
    fin = p[np.isfinite(p)]
    if fin.size and (fin.min() < 0.0 or fin.max() > 1.0):
        raise FamilyError(f"family {family.name!r}: predict returned values outside [0, 1]")
    return p


def family_fit_predict(family: SignalFamily, seed: int) -> FitPredict:
    """The walk-forward's per-window step for ``family`` (fit on the window's training rows of
    the instrument, predict its test rows)."""
    def fp(ds: Dataset, train: np.ndarray, s: str, cols: list[int], test: np.ndarray) -> np.ndarray:
        d = ds.instruments[s]
        names = tuple(ds.names[j] for j in cols)
        arrays = fit_arrays(family, d.X[train][:, cols], d.label[train], names, s, seed)
        return predict_rows(family, arrays, d.X[test][:, cols])
    return fp


def arrays_member(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The ``SYM.npz`` member bytes (deterministic; no pickle)."""
    try:
        return npz_bytes(**arrays)
    except BundleError as e:
        raise FamilyError(str(e)) from e
