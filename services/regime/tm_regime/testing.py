"""Real regime bundles for tests, fitted on the shipped bars (about a second per instrument)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tm_common.history import load_bars
from tm_common.models.bundle import Bundle, npz_bytes
from tm_common.testing import registry
from tm_quant.garch import GarchFilter, GarchParams, fit_garch
from tm_quant.regime import RegimeModel, fit_regime_model, regime_observation

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
KELLY = {"Bull": 0.67, "Neutral": 0.5, "Bear": 0.25, "Crisis": 0.17}


def fit_instrument(symbol: str, *, start: int = 0, n_bars: int = 1500,
                   seed: int = 7) -> tuple[RegimeModel, GarchParams]:
    """GARCH and HMM fitted on ``n_bars`` shipped bars of ``symbol`` from index ``start``."""
    c = np.array([float(b.close) for b in load_bars(symbol)[start:start + n_bars]])
    r = np.diff(np.log(c))
    params = fit_garch(r)
    sigma = GarchFilter(params).run(r * 100) / 100
    model = fit_regime_model(regime_observation(r, sigma), seed=seed, n_restarts=1, n_iter=60)
    return model, params


def regime_bundle(version: str, fitted: Mapping[str, tuple[RegimeModel, GarchParams]], *,
                  kelly: Mapping[str, float] = KELLY) -> bytes:
    """Bundle bytes of kind ``regime`` from ``{symbol: (hmm, garch)}``."""
    files, instruments = {}, {}
    for sym, (model, params) in sorted(fitted.items()):
        files[f"{sym}_hmm.npz"] = npz_bytes(**model.to_arrays())
        instruments[sym] = {"hmm": f"{sym}_hmm.npz", "garch": params.to_dict(),
                            "kelly": dict(kelly)}
    manifest = {"kind": "regime", "version": version, "instruments": instruments, "metrics": {}}
    return Bundle(manifest=manifest, files=files).to_bytes()


def fit_all(symbols: Sequence[str] = SYMBOLS, **kw) -> dict[str, tuple[RegimeModel, GarchParams]]:
    return {s: fit_instrument(s, **kw) for s in symbols}


class FakeRegistry(registry.FakeRegistry):
    """In-memory :class:`tm_regime.models.ModelSource` (``add`` files kind ``regime``)."""

    def __init__(self) -> None:
        super().__init__("regime")
