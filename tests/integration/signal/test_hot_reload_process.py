"""Hot reload under a live stream: the signal service process on real Redis receives bars while
a ``model.promoted`` arrives mid-stream; it is also killed and restarted. Every bar gets exactly
one signal, the version switches once, and the mesh output equals the in-process handler run."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, MD_DVOL, MODELS_PROMOTED, SIGNAL_TL, dlq
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.events import Envelope
from tm_common.history import load_bars
from tm_common.models.registry import ModelRegistry
from tm_common.testing.factories import history_bar_event as bar_envelope
from tm_signal.domain.engine import EngineConfig, SignalEngine
from tm_signal.handler import SignalHandler
from tm_signal.models import SignalModels
from tm_signal.repository import BarHistory
from tm_signal.testing import SYMBOLS, FakeRegistry, signal_bundle

START, N, PROMOTE_AT, KILL_AT = 5000, 30, 10, 20


BARS = {s: load_bars(s)[START:START + N] for s in SYMBOLS}
FIRST_MS = load_bars("BTCUSDT")[START - 250].open_time_ms


@pytest.fixture
async def world(tmp_path, redis_url, namespace):
    url = f"sqlite+aiosqlite:///{tmp_path}/tm.db"
    await migrate_async(url)
    engine = make_engine(url)
    reg = ModelRegistry(engine)
    bundles = {v: signal_bundle(v, first_bar_ms=FIRST_MS, seed=i + 1)
               for i, v in enumerate(("v1", "v2"))}
    for v, b in bundles.items():
        await reg.register("signal", v, b, data_hash="test", features=[], params={}, seed=0,
                           metrics={})
    await reg.promote("v1", "initial")
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    yield {"url": url, "reg": reg, "bus": bus, "bundles": bundles, "engine": engine}
    await bus.close()
    await engine.dispose()


async def signals(bus):
    return [json.loads(f["body"]) for _, f in await bus.entries(SIGNAL_TL, 100_000)]


async def wait(pred, timeout_s=60.0, what=""):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


async def in_process(bundles, promote_after: int) -> list[dict]:
    """The same bars through the same handler on the in-memory bus, the promotion handled after
    ``promote_after`` signals (where the mesh handled it)."""
    from tm_common.events import ModelPromoted
    reg = FakeRegistry()
    for v, b in bundles.items():
        reg.add(v, b, promote=(v == "v1"))
    bus = InMemoryBus()
    h = SignalHandler(SignalEngine(EngineConfig()), SignalModels(reg), history=BarHistory(None))
    c = Consumer(bus, h, group="signal", consumer="x", streams=[MD_BAR, MD_DVOL, MODELS_PROMOTED],
                 state_key="s", clock=lambda: 1)
    promoted = False
    for i in range(N):
        for s in SYMBOLS:            # one bar at a time: a loaded mesh may take the promotion
            await bus.publish(MD_BAR, bar_envelope(s, BARS[s][i]))   # between two instruments
            await c.run_until_idle()
            if not promoted and await bus.length(SIGNAL_TL) >= promote_after:
                assert await bus.length(SIGNAL_TL) == promote_after
                reg.promote("v2")
                await bus.publish(MODELS_PROMOTED, Envelope.root(
                    ModelPromoted(kind="signal", version="v2"), key="signal:v2",
                    correlation_id="model:v2", ts_event_ns=1, ts_init_ns=1))
                await c.run_until_idle()
                promoted = True
    return [json.loads(f["body"]) for _, f in await bus.entries(SIGNAL_TL, 100_000)]


def strip(sigs):
    return [{k: v for k, v in s.items() if k != "inference_us"} for s in sigs]


async def test_promotion_mid_stream_and_a_kill_each_bar_exactly_once(world, signal_service,
                                                                    redis_url, namespace):
    bus, reg = world["bus"], world["reg"]
    svc = signal_service(redis_url, namespace, world["url"])
    svc.wait_for(lambda: svc.get("/readyz").status_code == 200, 60, "/readyz 200 with v1")

    async def version():
        return svc.get("/status").json()["extra"]["model_version"]
    v2_seen_at: list[int] = []

    async def feed():
        nonlocal svc
        for i in range(N):
            if i == PROMOTE_AT:
                body = await reg.promote("v2", "better")
                await bus.publish(MODELS_PROMOTED, Envelope.root(
                    body, key="signal:v2", correlation_id="model:v2", ts_event_ns=1,
                    ts_init_ns=1))
            if i == KILL_AT:
                svc.stop(signal.SIGKILL)               # mid-stream, no drain
            for s in SYMBOLS:
                await bus.publish(MD_BAR, bar_envelope(s, BARS[s][i]))
            if i == KILL_AT:
                svc = signal_service(redis_url, namespace, world["url"])
            if not v2_seen_at and i > PROMOTE_AT and await version() == "v2":
                v2_seen_at.append(i)
            await asyncio.sleep(0.03)
    await feed()

    async def done():
        return await bus.length(SIGNAL_TL) >= 3 * N
    await wait(done, 60, "a signal for every bar")
    await asyncio.sleep(0.5)                           # nothing more may come
    out = await signals(bus)
    keys = [(s["instrument"], s["bar_time_ms"]) for s in out]
    assert len(keys) == 3 * N and len(set(keys)) == 3 * N          # none missing, none twice
    versions = [s["model_version"] for s in out]
    k = versions.index("v2")
    assert set(versions[:k]) == {"v1"} and set(versions[k:]) == {"v2"}  # one switch
    times = [b.open_time_ms for b in BARS["BTCUSDT"]]
    assert min(s["bar_time_ms"] for s in out[k:]) >= times[PROMOTE_AT - 1]
    assert v2_seen_at, "the service never reported v2"
    assert all(s["model_version"] == "v2" for s in out if s["bar_time_ms"] >= times[v2_seen_at[0] + 1])
    assert all(s["reason"].startswith("ok") for s in out)       # warmed from history: no warm-up
    assert await bus.length(dlq(MD_BAR)) == 0 and await bus.length(dlq(MODELS_PROMOTED)) == 0
    # mesh == in-process backtest, with the promotion at the same point in the handling order
    def by_bar(sigs):
        return sorted(strip(sigs), key=lambda x: (x["bar_time_ms"], x["instrument"]))
    assert by_bar(out) == by_bar(await in_process(world["bundles"], k))
    assert svc.stop() == 0                              # SIGTERM: drained, rows flushed
    # The signals table is written behind the stream: rows queued in the killed process are
    # gone with it (the stream keeps the events); every bar handled after the restart is there.
    import sqlalchemy as sa
    from tm_common.db.tables import signals as T
    async with world["engine"].connect() as conn:
        rows = {(r.instrument, r.bar_time_ms): (r.direction, r.probability, r.model_version)
                for r in (await conn.execute(sa.select(T))).all()}
    want = {(s["instrument"], s["bar_time_ms"]): (s["direction"], s["probability"],
                                                  s["model_version"]) for s in out}
    assert rows.items() <= want.items()
    assert all(key in rows for key in want if key[1] >= times[KILL_AT])
