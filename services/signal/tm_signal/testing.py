"""Small, real signal bundles for tests and benchmarks (tiny xgboost boosters, seconds to fit).

The boosters are trained on synthetic data: what they predict is meaningless, but they are real
``binary:logistic`` models in UBJSON inside a real bundle, so loading, column mapping, inference
and calibration are exercised end to end. Different seeds give different predictions, which is
how the tests tell two versions apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xgboost as xgb
from tm_common.models.bundle import Bundle
from tm_common.models.registry import ModelRegistry
from tm_common.testing import registry
from tm_quant.features import FEATURE_NAMES
from tm_quant.garch import DEFAULT_GARCH_PARAMS, GarchParams

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEFAULT_FEATURES = ("ret_1", "ret_6", "rv_42", "garch_vol", "rsi_14", "macd_hist", "dvol_level",
                    "btc_ret_1", "volume_z_20", "funding_rate")


def tiny_booster(n_features: int, *, seed: int, n_trees: int = 12, depth: int = 3) -> xgb.Booster:
    """A ``binary:logistic`` booster on synthetic rows of standard-normal-ish inputs."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, n_features)) * 0.02
    X[rng.random(X.shape) < 0.05] = np.nan                      # teach it missing values
    w = rng.normal(size=n_features)
    y = (np.nan_to_num(X) @ w + rng.normal(scale=0.02, size=600) > 0).astype(int)
    params = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.3, "nthread": 1,
              "seed": seed}
    return xgb.train(params, xgb.DMatrix(X, label=y), n_trees)


def signal_bundle(version: str, *, first_bar_ms: int, seed: int = 0, horizon_bars: int = 6,
                  symbols: Sequence[str] = SYMBOLS, features: Sequence[str] = DEFAULT_FEATURES,
                  garch: GarchParams = DEFAULT_GARCH_PARAMS, calibration=(1.0, 0.0),
                  n_trees: int = 12, depth: int = 3) -> bytes:
    """Bundle bytes of kind ``signal`` for ``symbols`` (one booster each)."""
    files, instruments = {}, {}
    for k, sym in enumerate(symbols):
        bst = tiny_booster(len(features), seed=seed * 100 + k, n_trees=n_trees, depth=depth)
        files[f"{sym}.ubj"] = bytes(bst.save_raw("ubj"))
        instruments[sym] = {"booster": f"{sym}.ubj", "features": list(features),
                            "garch": garch.to_dict(), "first_bar_ms": int(first_bar_ms),
                            "prob_calibration": {"a": float(calibration[0]),
                                                 "b": float(calibration[1])}}
    manifest = {"kind": "signal", "version": version, "horizon_bars": horizon_bars,
                "feature_names": list(FEATURE_NAMES), "instruments": instruments,
                "metrics": {}}
    return Bundle(manifest=manifest, files=files).to_bytes()


async def register_signal_versions(reg: ModelRegistry, *, first_bar_ms: int,
                                   metrics: Mapping[str, Any],
                                   seeds: Mapping[str, int] | None = None) -> None:
    """Register one :func:`signal_bundle` per version of ``seeds`` (version → seed; by default
    ``v1`` seed 1 and ``v2`` seed 2), each with ``metrics`` (e.g. its gate result), unpromoted."""
    for v, seed in (seeds or {"v1": 1, "v2": 2}).items():
        await reg.register("signal", v, signal_bundle(v, first_bar_ms=first_bar_ms, seed=seed),
                           data_hash="test", features=[], params={}, seed=0, metrics=dict(metrics))


class FakeRegistry(registry.FakeRegistry):
    """In-memory :class:`tm_signal.models.ModelSource` (``add`` files kind ``signal``; ``fail``,
    ``fail_next`` and ``calls`` as :class:`tm_common.testing.registry.FakeRegistry`)."""

    def __init__(self) -> None:
        super().__init__("signal")
