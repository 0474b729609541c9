"""No pickle is ever loaded from the model registry (ARCHITECTURE §7).

Artifacts are bundles (:mod:`tm_common.models.bundle`): a zip of ``manifest.json`` plus ``.json``,
``.npz`` (read with ``allow_pickle=False``) and ``.ubj`` (xgboost UBJSON) members. Proved here:

1. a pickle or joblib payload, in every place one could hide in an artifact, is refused by
   ``ModelRegistry.register`` with a clear :class:`BundleError`, and nothing is stored;
2. the same payloads written straight into the ``model_registry`` table (an attacker with write
   access to the shared store, bypassing ``register``) are refused by every service loader
   (signal, regime, sizer) with a clear permanent error;
3. legitimate bundles of every kind register, load and predict without a single unpickling.

Every payload is a canary: unpickling it creates a file. While the proofs run, ``pickle.load``/
``loads``/``Unpickler`` (both implementations) are replaced by functions that fail the test, and an
audit hook records every ``pickle.find_class`` (which any unpickler, joblib's included, raises
before it can call anything).
"""

from __future__ import annotations

import _pickle
import asyncio
import io
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from tm_common.db import make_engine
from tm_common.db.migrate import migrate
from tm_common.db.tables import model_registry as T
from tm_common.models.bundle import MANIFEST, Bundle, BundleError
from tm_common.models.registry import ModelRegistry

_AUDIT: list[tuple] = []
_WATCHING = [False]


def _audit(event: str, args: tuple) -> None:
    if _WATCHING[0] and event == "pickle.find_class":
        _AUDIT.append(args)


sys.addaudithook(_audit)     # cannot be removed; it records only while a guard is active


class Canary:
    """Unpickling this creates ``path`` (a harmless, visible side effect)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture
def guard(monkeypatch, tmp_path):
    """Fails the test if anything unpickles; yields the canary file's path."""
    canary = tmp_path / "UNPICKLED"
    called: list[str] = []

    def refuse(name):
        def f(*a, **k):
            called.append(name)
            raise AssertionError(f"{name} was called: something tried to unpickle")
        return f

    for mod in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(mod, name, refuse(f"{mod.__name__}.{name}"))
    for name in ("_load", "_loads", "_Unpickler"):
        monkeypatch.setattr(pickle, name, refuse(f"pickle.{name}"))
    _AUDIT.clear()
    _WATCHING[0] = True
    try:
        yield canary
    finally:
        _WATCHING[0] = False
    assert not called, called
    assert not _AUDIT, f"an unpickler resolved globals: {_AUDIT}"
    assert not canary.exists(), "a pickle payload was executed"


# -- artifacts -----------------------------------------------------------------------------------
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _payloads(canary: Path, good: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """(label, kind, artifact bytes, message the refusal must match). ``good``: a legitimate
    bundle's bytes per kind, whose members the payloads replace."""
    import joblib

    raw = pickle.dumps(Canary(canary), protocol=pickle.HIGHEST_PROTOCOL)
    jb = io.BytesIO()
    joblib.dump(Canary(canary), jb)
    obj_npz = io.BytesIO()
    np.savez(obj_npz, startprob=np.array([Canary(canary)], dtype=object))   # pickled inside .npy

    def members(kind: str) -> dict[str, bytes]:
        with zipfile.ZipFile(io.BytesIO(good[kind])) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist()}

    sig, reg, rl = members("signal"), members("regime"), members("rl")
    booster = next(n for n in sig if n.endswith(".ubj"))
    hmm = next(n for n in reg if n.endswith(".npz"))
    actor = next(n for n in rl if n.endswith(".npz"))
    return [
        ("a bare pickle", "signal", raw, "not a zip archive"),
        ("a joblib file", "regime", jb.getvalue(), "not a zip archive"),
        ("a .pkl member", "signal", _zip({**sig, "model.pkl": raw}), "never pickles"),
        ("a .joblib member", "rl", _zip({**rl, "policy.joblib": jb.getvalue()}), "never pickles"),
        ("a pickle named .ubj", "signal", _zip({**sig, booster: raw}), "pickles are never loaded"),
        ("a pickle named .npz", "regime", _zip({**reg, hmm: raw}), "pickle is never allowed"),
        ("an object array in .npz", "rl", _zip({**rl, actor: obj_npz.getvalue()}),
         "pickle is never allowed"),
        ("a pickle named manifest.json", "signal", _zip({**sig, MANIFEST: raw}), "not valid UTF-8 JSON"),
        ("a pickle named .json", "regime", _zip({**reg, "extra.json": raw}), "not valid UTF-8 JSON"),
    ]


def _good_bundles() -> dict[str, bytes]:
    from tm_regime.testing import fit_instrument, regime_bundle
    from tm_signal.testing import signal_bundle
    from tm_sizer.testing import policy_bundle

    return {"signal": signal_bundle("sig-1", first_bar_ms=1_640_995_200_000, seed=1,
                                    symbols=("BTCUSDT",)),
            "regime": regime_bundle("reg-1", {"BTCUSDT": fit_instrument("BTCUSDT", n_bars=400)}),
            "rl": policy_bundle("rl-1").to_bytes()}


@pytest.fixture(scope="module")
def good() -> dict[str, bytes]:
    return _good_bundles()


def _registry(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    migrate(url)
    engine = make_engine(url)
    return engine, ModelRegistry(engine)


META = {"data_hash": "h", "features": [], "params": {}, "seed": 0, "metrics": {}}


# -- proofs --------------------------------------------------------------------------------------
def test_register_refuses_pickle_and_joblib_payloads(tmp_path, good, guard):
    async def go():
        engine, reg = _registry(tmp_path)
        try:
            for i, (_label, kind, data, message) in enumerate(_payloads(guard, good)):
                with pytest.raises(BundleError, match=message):
                    await reg.register(kind, f"bad-{i}", data, **META)
            assert await reg.list() == [], "a refused artifact was stored"
        finally:
            await engine.dispose()
    asyncio.run(go())


def test_services_refuse_a_pickle_smuggled_into_the_store(tmp_path, good, guard):
    from tm_regime.models import BadModel as BadRegime
    from tm_regime.models import RegimeModels
    from tm_signal.models import BadModel as BadSignal
    from tm_signal.models import SignalModels
    from tm_sizer.policies import BadPolicy, SizerPolicies

    loaders = {"signal": (SignalModels, BadSignal), "regime": (RegimeModels, BadRegime),
               "rl": (SizerPolicies, BadPolicy)}

    async def go():
        engine, reg = _registry(tmp_path)
        try:
            for kind, data in good.items():               # production rows to overwrite
                version = Bundle.from_bytes(data).version
                await reg.register(kind, version, data, **META)
                await reg.promote(version, "test")
            for label, kind, data, _ in _payloads(guard, good):
                async with engine.begin() as conn:         # bypass register(): raw write
                    await conn.execute(sa.update(T).where(T.c.kind == kind,
                                                          T.c.stage == "production")
                                       .values(artifact=data))
                cls, bad = loaders[kind]
                with pytest.raises(bad) as e:
                    await cls(reg).production()
                assert "unusable" in str(e.value) or "pickle" in str(e.value), (label, e.value)
        finally:
            await engine.dispose()
    asyncio.run(go())


def _inspect(artifact: bytes) -> list[str]:
    """The format, read without loading: member names, and each ``.npy``'s dtype."""
    out = []
    with zipfile.ZipFile(io.BytesIO(artifact)) as zf:
        for info in zf.infolist():
            data = zf.read(info)
            assert info.filename.endswith((".json", ".npz", ".ubj")), info.filename
            assert data[:1] != b"\x80", f"{info.filename} starts like a pickle"
            if info.filename.endswith(".npz"):
                with zipfile.ZipFile(io.BytesIO(data)) as inner:
                    for npy in inner.infolist():
                        f = io.BytesIO(inner.read(npy))
                        version = np.lib.format.read_magic(f)
                        header = {(1, 0): np.lib.format.read_array_header_1_0,
                                  (2, 0): np.lib.format.read_array_header_2_0}[version]
                        _, _, dtype = header(f)
                        assert not dtype.hasobject, f"{info.filename}/{npy.filename}: {dtype}"
                        out.append(f"{info.filename}/{npy.filename}:{dtype}")
            else:
                out.append(info.filename)
    return out


def test_legitimate_bundles_load_and_predict_without_unpickling(tmp_path, good, guard):
    from tm_quant.features import FEATURE_NAMES
    from tm_quant.regime import RegimeFilter, regime_observation
    from tm_quant.sizing.observation import OBS_DIM
    from tm_regime.models import RegimeModels
    from tm_signal.models import SignalModels
    from tm_sizer.policies import SizerPolicies

    async def go():
        engine, reg = _registry(tmp_path)
        try:
            for kind, data in good.items():
                version = Bundle.from_bytes(data).version
                await reg.register(kind, version, data, **META)
                await reg.promote(version, "test")
                assert _inspect((await reg.get(version)).artifact)
            sig = await SignalModels(reg).production()
            p = sig.instruments["BTCUSDT"].predict(np.zeros(len(FEATURE_NAMES)))
            regime = await RegimeModels(reg).production()
            state = RegimeFilter(regime.instruments["BTCUSDT"].hmm).update(
                regime_observation(0.001, 0.01))
            pol = await SizerPolicies(reg).production()
            frac = pol.fraction(np.zeros(OBS_DIM), 0.25)
            return p, state, frac
        finally:
            await engine.dispose()
    p, state, frac = asyncio.run(go())
    assert 0.0 <= p <= 1.0 and state is not None and abs(frac) <= 0.25
