"""Serving a signal model family other than the built-in xgboost: the registered numpy predictor
and the arrays of one instrument.

A bundle names its family by a string (manifest ``family``). The name is looked up in
:data:`tm_quant.families.FAMILIES`, the table compiled into this service; a name that is not
there is refused with :class:`~tm_common.errors.ModelUnusable` (the promotion is dead-lettered
with the reason, ``/readyz`` shows it when it is production). Nothing a bundle contains is ever
imported or executed: the arrays are an ``.npz`` read with ``allow_pickle=False`` and the code
is the service's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from tm_common.errors import ModelUnusable
from tm_common.models.bundle import BundleError, load_npz
from tm_quant import families
from tm_quant.families import SignalFamily


@dataclass(frozen=True, eq=False)
class FamilyPredictor:
    """A family's predictor bound to one instrument's arrays."""

    family: SignalFamily
    arrays: Mapping[str, np.ndarray]

    def predict(self, x: np.ndarray) -> float:
        """P(up) for one row ``x`` (the instrument's feature columns, NaN = missing)."""
        out = np.asarray(self.family.predict(self.arrays, x.reshape(1, -1)), dtype=np.float64)
        return float(out.reshape(-1)[0]) if out.size == 1 else float("nan")


def family_of(version: str, name: str) -> SignalFamily:
    """The registered family ``name`` or :class:`ModelUnusable` naming the known ones."""
    try:
        return families.get(name)
    except families.UnknownFamily as e:
        raise ModelUnusable(f"{version}: {e}") from None


def load_predictor(version: str, symbol: str, family: SignalFamily, member: str,
                   files: Mapping[str, bytes], n_features: int) -> FamilyPredictor:
    """The predictor of ``symbol``: its ``.npz`` member, checked by the family, then one all-NaN
    row predicted (a finite value in [0, 1] is required).

    Raises:
        ModelUnusable: the member is missing or unreadable, or the family refuses the arrays.
    """
    where = f"{version}/{symbol} ({family.name})"
    try:
        arrays = load_npz(files[member])
    except (KeyError, BundleError) as e:
        raise ModelUnusable(f"{where}: arrays {member!r} do not load: {e}") from e
    try:
        if family.check is not None:
            family.check(arrays, n_features)
        probe = FamilyPredictor(family, arrays).predict(np.full(n_features, np.nan))
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise ModelUnusable(f"{where}: arrays refused: {type(e).__name__}: {e}") from e
    if not 0.0 <= probe <= 1.0:
        raise ModelUnusable(f"{where}: predictor gives {probe} for a row of missing values, "
                            "not a probability")
    return FamilyPredictor(family, arrays)
