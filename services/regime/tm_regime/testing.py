"""Real regime bundles for tests, fitted on the shipped bars (about a second per instrument)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tm_common.history import load_bars
from tm_common.models.bundle import Bundle, npz_bytes
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


class Record:
    """A stand-in for a registry record (``version``, ``kind``, ``artifact``)."""

    def __init__(self, version: str, artifact: bytes, kind: str = "regime") -> None:
        self.version, self.artifact, self.kind = version, artifact, kind


class FakeRegistry:
    """In-memory :class:`tm_regime.models.ModelSource`; ``fail_next`` fails that many calls."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self.prod: dict[str, str] = {}
        self.fail_next = 0

    def add(self, version: str, artifact: bytes, kind: str = "regime", promote: bool = False) -> None:
        self.records[version] = Record(version, artifact, kind)
        if promote:
            self.prod[kind] = version

    def _check(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("registry down (test)")

    async def production(self, kind: str):
        self._check()
        v = self.prod.get(kind)
        return None if v is None else self.records[v]

    async def get(self, version: str):
        self._check()
        return self.records.get(version)
