"""The signal model of one registry version: per-instrument predictors and their inputs.

Built from a ``signal`` bundle's manifest and member bytes (contract in
:mod:`tm_common.models.bundle`); the parsing of the zip itself stays in the handler's loader.
The built-in family (``xgboost``, no ``family`` in the manifest) is served by the booster or its
compiled trees; another family by its registered numpy predictor (:mod:`.families`), looked up
by name in this code's table; an unknown family is refused.
Feature columns are mapped *by name* onto this code's ``FEATURE_NAMES``, so a bundle written by a
trainer with another column order still reads the right values; an unknown name is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb
from tm_common.errors import ModelUnusable
from tm_common.models.bundle import BUILTIN_FAMILY
from tm_quant.features import FEATURE_NAMES
from tm_quant.garch import GarchParams

from tm_signal.domain.families import FamilyPredictor, family_of, load_predictor
from tm_signal.domain.forest import CompiledForest

ModelLoadError = ModelUnusable      # the shared error under this module's name (importable)

FUNDING_FEATURES = frozenset({"funding_rate", "funding_mean_18", "funding_mean_42"})
DVOL_FEATURES = frozenset({"dvol_level", "dvol_chg_6", "dvol_rv_spread"})
#: Side inputs (series known at a time, looked up as of a bar's close) → the features they feed.
SIDE_INPUT_FEATURES: Mapping[str, frozenset[str]] = {"dvol": DVOL_FEATURES,
                                                     "funding": FUNDING_FEATURES}


def calibrate(raw: float, a: float, b: float) -> float:
    """P(up) from a raw booster output: Platt ``1 / (1 + exp(-(a raw + b)))``; identity when
    ``a = 1, b = 0`` (the raw output is already a probability). Same rule as the bundle module."""
    if a == 1.0 and b == 0.0:
        return float(raw)
    z = a * float(raw) + b
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True, eq=False)
class InstrumentModel:
    """One instrument's predictor and how to feed it.

    Attributes:
        booster: the xgboost booster (built-in family), None for another family.
        columns: indices into ``FEATURE_NAMES`` in the booster's column order.
        garch: GARCH parameters (percent units) for the ``garch_vol`` features.
        first_bar_ms: open time of the bar the trainer started its features from; the live
            feature state is rebuilt from the same bar so both paths agree.
        cal_a, cal_b: Platt calibration of the raw output.
        forest: the booster compiled for fast one-row inference (None = call the booster).
        predictor: another family's predictor (None for the built-in family).
    """

    instrument: str
    booster: xgb.Booster | None
    features: tuple[str, ...]
    columns: np.ndarray
    garch: GarchParams
    first_bar_ms: int
    cal_a: float
    cal_b: float
    forest: CompiledForest | None = None
    predictor: FamilyPredictor | None = None

    @property
    def uses_funding(self) -> bool:
        return bool(FUNDING_FEATURES.intersection(self.features))

    @property
    def side_inputs(self) -> tuple[str, ...]:
        """The side inputs (``"dvol"``, ``"funding"``) at least one selected feature reads."""
        return tuple(k for k, names in SIDE_INPUT_FEATURES.items()
                     if names.intersection(self.features))

    def predict(self, row: np.ndarray) -> float:
        """P(forward return over the horizon > 0) for one full feature row (NaN = missing)."""
        x = row[self.columns]
        if self.predictor is not None:
            return calibrate(self.predictor.predict(x), self.cal_a, self.cal_b)
        if self.forest is not None:
            return calibrate(self.forest.predict(x), self.cal_a, self.cal_b)
        assert self.booster is not None
        raw = self.booster.inplace_predict(x.reshape(1, -1), validate_features=False,
                                           missing=np.nan)
        return calibrate(float(raw[0]), self.cal_a, self.cal_b)


@dataclass(frozen=True, eq=False)
class SignalModel:
    """A production signal model: ``version``, ``horizon_bars`` (4h bars), its instruments and
    its ``family`` (``"xgboost"``: the built-in)."""

    version: str
    horizon_bars: int
    instruments: Mapping[str, InstrumentModel]
    family: str = BUILTIN_FAMILY

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], files: Mapping[str, bytes], *,
                      compile_trees: bool = True) -> SignalModel:
        """Boosters loaded single-threaded (one row per call: threads only add overhead) and,
        with ``compile_trees``, compiled to :class:`CompiledForest` where supported.

        Raises:
            ModelLoadError: wrong kind, a family this code does not register, a feature this
                code does not compute, an unreadable booster or family arrays, or a booster
                whose column count differs from its feature list.
        """
        if manifest.get("kind") != "signal":
            raise ModelLoadError(f"bundle kind {manifest.get('kind')!r} is not 'signal'")
        version = str(manifest["version"])
        family_name = str(manifest.get("family", BUILTIN_FAMILY))
        # Another family is looked up by name in this code's table; unknown: refused.
        family = None if family_name == BUILTIN_FAMILY else family_of(version, family_name)
        index = {n: j for j, n in enumerate(FEATURE_NAMES)}
        out: dict[str, InstrumentModel] = {}
        for sym, spec in sorted(manifest["instruments"].items()):
            feats = tuple(spec["features"])
            unknown = [f for f in feats if f not in index]
            if unknown:
                raise ModelLoadError(f"{version}/{sym}: features not computed live: {unknown}")
            cal = spec["prob_calibration"]
            try:
                garch = GarchParams.from_dict(spec["garch"])
            except (TypeError, ValueError) as e:
                raise ModelLoadError(f"{version}/{sym}: garch: {type(e).__name__}: {e}") from e
            bst, forest, predictor = None, None, None
            if family is not None:
                predictor = load_predictor(version, sym, family, spec["model"], files, len(feats))
            else:
                bst = _booster(version, sym, spec, files, len(feats))
                forest = CompiledForest.from_booster(bst) if compile_trees else None
            out[sym] = InstrumentModel(
                instrument=sym, booster=bst, features=feats,
                columns=np.array([index[f] for f in feats], dtype=np.intp),
                garch=garch, first_bar_ms=int(spec["first_bar_ms"]),
                cal_a=float(cal["a"]), cal_b=float(cal["b"]), forest=forest, predictor=predictor)
        return cls(version=version, horizon_bars=int(manifest["horizon_bars"]), instruments=out,
                   family=family_name)


def _booster(version: str, sym: str, spec: Mapping[str, Any], files: Mapping[str, bytes],
             n_features: int) -> xgb.Booster:
    """The built-in family's booster of ``sym``, single-threaded, its columns checked."""
    bst = xgb.Booster()
    try:
        bst.load_model(bytearray(files[spec["booster"]]))
        bst.set_param({"nthread": 1})
    except (xgb.core.XGBoostError, KeyError) as e:
        raise ModelLoadError(f"{version}/{sym}: booster {spec.get('booster')!r} "
                             f"does not load: {e}") from e
    n = bst.num_features()
    if n != n_features:
        raise ModelLoadError(f"{version}/{sym}: booster has {n} columns, "
                             f"manifest lists {n_features} features")
    return bst
