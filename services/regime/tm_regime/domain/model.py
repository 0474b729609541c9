"""The regime model of one registry version: per instrument an HMM, GARCH parameters and the
Kelly fraction of each regime. Built from a ``regime`` bundle's manifest and its ``.npz`` arrays
(contract in :mod:`tm_common.models.bundle`); unzipping stays in the handler's loader."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tm_common.errors import ModelUnusable
from tm_quant.garch import GarchParams
from tm_quant.regime import KellyFractions, RegimeModel

ModelLoadError = ModelUnusable      # the shared error under this module's name (importable)


@dataclass(frozen=True, eq=False)
class InstrumentRegimeModel:
    """``hmm`` (states ordered Bull, Neutral, Bear, Crisis), ``garch`` (percent units) for the
    volatility half of the observation, ``kelly`` fractions per regime."""

    hmm: RegimeModel
    garch: GarchParams
    kelly: KellyFractions


@dataclass(frozen=True, eq=False)
class RegimeBundleModel:
    version: str
    instruments: Mapping[str, InstrumentRegimeModel]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any],
                      arrays: Callable[[str], Mapping[str, np.ndarray]]) -> RegimeBundleModel:
        """``arrays(member)`` returns the arrays of one ``.npz`` member.

        Raises:
            ModelLoadError: wrong kind, or an HMM/GARCH/Kelly entry that does not validate.
        """
        if manifest.get("kind") != "regime":
            raise ModelLoadError(f"bundle kind {manifest.get('kind')!r} is not 'regime'")
        version = str(manifest["version"])
        out = {}
        for sym, spec in sorted(manifest["instruments"].items()):
            try:
                k = spec["kelly"]
                out[sym] = InstrumentRegimeModel(
                    hmm=RegimeModel.from_arrays(arrays(spec["hmm"])),
                    garch=GarchParams.from_dict(spec["garch"]),
                    kelly=KellyFractions(bull=float(k["Bull"]), neutral=float(k["Neutral"]),
                                         bear=float(k["Bear"]), crisis=float(k["Crisis"])))
            except (KeyError, TypeError, ValueError, np.linalg.LinAlgError) as e:
                raise ModelLoadError(f"{version}/{sym}: {type(e).__name__}: {e}") from e
        return cls(version=version, instruments=out)
