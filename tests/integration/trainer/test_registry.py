"""ModelRegistry on SQLite and PostgreSQL: register, promote, rollback, list; no pickles."""

from __future__ import annotations

import io
import pickle
import zipfile

import pytest
from tm_common.models.bundle import Bundle, BundleError
from tm_common.models.registry import ModelRegistry, RegistryError
from tm_common.testing.databases import migrated_engine


def _bundle(version: str, kind: str = "regime", **extra) -> bytes:
    import numpy as np
    from tm_common.models.bundle import npz_bytes
    from tm_quant.garch import DEFAULT_GARCH_PARAMS
    from tm_quant.regime import RegimeModel

    arrays = {"startprob": np.full(4, 0.25), "transmat": np.full((4, 4), 0.25),
              "means": np.arange(8.0).reshape(4, 2), "covars": np.stack([np.eye(2)] * 4)}
    m = {"kind": kind, "version": version, "instruments": {"BTCUSDT": {
        "hmm": "BTCUSDT_hmm.npz", "garch": DEFAULT_GARCH_PARAMS.to_dict(),
        "kelly": {"Bull": 0.67, "Neutral": 0.5, "Bear": 0.25, "Crisis": 0.17}}}, **extra}
    return Bundle(m, {"BTCUSDT_hmm.npz": npz_bytes(**RegimeModel.from_arrays(arrays).to_arrays())})\
        .to_bytes()


@pytest.fixture
async def registry(db_url):
    async with migrated_engine(db_url) as engine:
        ticks = iter(range(1_000, 10_000_000, 1000))
        yield ModelRegistry(engine, clock_ms=lambda: next(ticks))


async def _register(reg: ModelRegistry, version: str, kind: str = "regime", **kw):
    return await reg.register(kind, version, _bundle(version, kind), data_hash="h" * 64,
                              features={"x": ["a"]}, params={"p": 1}, seed=7,
                              metrics={"mean_ic": 0.04, "sharpe": 0.9, "why": "ok"}, **kw)


async def test_register_is_idempotent_and_refuses_conflicts(registry):
    a = await _register(registry, "r1")
    assert a.stage == "candidate" and a.artifact == _bundle("r1")
    again = await _register(registry, "r1")
    assert again.created_at_ms == a.created_at_ms and again.artifact == a.artifact
    with pytest.raises(RegistryError, match="different content"):
        await registry.register("regime", "r1", _bundle("r1", note="retrained"), data_hash="h", features={},
                                params={}, seed=1, metrics={})
    got = await registry.get("r1")
    assert got.bundle().version == "r1" and got.features == {"x": ["a"]} and got.seed == 7
    assert got.metrics["mean_ic"] == 0.04 and got.metrics["_history"][0]["stage"] == "candidate"
    assert await registry.get("nope") is None


async def test_promote_rollback_walks_back_through_history(registry):
    for v in ("r1", "r2", "r3"):
        await _register(registry, v)
    assert await registry.production("regime") is None
    e1 = await registry.promote("r1", "first")
    assert (e1.version, e1.previous_version, e1.kind) == ("r1", None, "regime")
    assert e1.metrics == {"mean_ic": 0.04, "sharpe": 0.9}
    await registry.promote("r2", "better")
    e3 = await registry.promote("r3", "best")
    assert e3.previous_version == "r2"
    stages = {r.version: r.stage for r in await registry.list("regime")}
    assert stages == {"r1": "archived", "r2": "archived", "r3": "production"}
    again = await registry.promote("r3", "twice")  # already production: no change
    assert again.version == "r3" and (await registry.production("regime")).version == "r3"

    back = await registry.rollback("regime", "r3 misbehaves")
    assert (back.version, back.previous_version, back.reason) == ("r2", "r3", "r3 misbehaves")
    back2 = await registry.rollback("regime", "r2 too")
    assert (back2.version, back2.previous_version) == ("r1", "r2")  # not a toggle back to r3
    with pytest.raises(RegistryError, match="roll back"):
        await registry.rollback("regime", "nothing left")
    prod = await registry.production("regime")
    assert prod.version == "r1" and prod.artifact == _bundle("r1")
    assert [(h["stage"], h["by"]) for h in prod.history] == [
        ("candidate", "register"), ("production", "promote"), ("archived", "promote"),
        ("production", "rollback")]
    rows = await registry.list()
    assert [r.version for r in rows] == ["r3", "r2", "r1"]  # newest first
    assert all(r.artifact is None for r in rows)  # listings do not load artifacts
    assert sum(r.stage == "production" for r in rows) == 1


async def test_kinds_are_independent(registry):
    await _register(registry, "r1")
    await _register(registry, "s1", kind="rl")
    await registry.promote("r1", "x")
    await registry.promote("s1", "y")
    assert (await registry.production("regime")).version == "r1"
    assert (await registry.production("rl")).version == "s1"
    with pytest.raises(RegistryError, match="unknown model version"):
        await registry.promote("zzz", "x")


async def test_refuses_pickles_and_unsafe_bundles(registry):
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.json", b'{"kind": "regime", "version": "p1", "instruments": {}}')
        zf.writestr("model.pkl", pickle.dumps({"x": 1}))
    with pytest.raises(BundleError, match="not allowed"):
        await registry.register("regime", "p1", evil.getvalue(), data_hash="h", features={},
                                params={}, seed=1, metrics={})
    with pytest.raises(BundleError):
        await registry.register("regime", "p2", pickle.dumps(object), data_hash="h", features={},
                                params={}, seed=1, metrics={})
    with pytest.raises(BundleError, match="manifest says"):
        await registry.register("regime", "other", _bundle("r9"), data_hash="h", features={},
                                params={}, seed=1, metrics={})
    assert await registry.list() == []


async def test_concurrent_registers_of_one_version_agree(registry):
    import asyncio

    recs = await asyncio.gather(*[_register(registry, "r1") for _ in range(4)])
    assert {r.created_at_ms for r in recs} == {recs[0].created_at_ms}
    assert len(await registry.list()) == 1
