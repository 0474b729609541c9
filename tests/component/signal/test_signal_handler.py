"""The signal handler in the real consumer loop on the in-memory bus."""

from __future__ import annotations

from decimal import Decimal

import httpx
import msgspec
import pytest
from tm_common.bus import InMemoryBus
from tm_common.bus.streams import MD_BAR, MODELS_PROMOTED, SIGNAL_TL, dlq
from tm_common.history import load_bars
from tm_common.service.app import create_app
from tm_common.service.runtime import ServiceRuntime
from tm_signal.config import SignalSettings
from tm_signal.domain.engine import NO_MODEL
from tm_signal.handler import NotReady
from tm_signal.testing import FakeRegistry, signal_bundle

from .conftest import (
    START,
    bar_env,
    bar_times,
    content,
    first_ms,
    make,
    promoted_env,
    publish_lockstep,
    signals,
)

N = 40


@pytest.fixture(scope="module")
def bundles():
    first = first_ms(-250)              # warm-up from history covers the 200-bar window
    return {"v1": signal_bundle("v1", first_bar_ms=first, seed=1),
            "v2": signal_bundle("v2", first_bar_ms=first_ms(-260), seed=2)}


def registry(bundles, prod="v1"):
    r = FakeRegistry()
    for v, b in bundles.items():
        r.add(v, b, promote=(v == prod))
    return r


async def run_lockstep(reg, seed, n=N, **kw):
    bus = InMemoryBus()
    h, c = make(bus, reg, **kw)
    await publish_lockstep(bus, START, n, seed=seed, consumer=c)
    return bus, h, c


async def test_order_of_instruments_within_a_bar_time_does_not_matter(bundles):
    a, _, _ = await run_lockstep(registry(bundles), seed=1)
    b, _, _ = await run_lockstep(registry(bundles), seed=2)
    sa, sb = await signals(a), await signals(b)
    assert len(sa) == len(sb) == 3 * N
    assert sorted(map(content, sa)) == sorted(map(content, sb))
    # same inputs → same event ids, whichever event released the signal
    assert {s["correlation_id"] for s in sa} == {s["correlation_id"] for s in sb}
    assert all(s["body"]["model_version"] == "v1" and s["body"]["reason"].startswith("ok")
               for s in sa)


async def test_no_model_gives_zero_confidence_and_readyz_says_why():
    bus = InMemoryBus()
    h, c = make(bus, FakeRegistry())
    with pytest.raises(NotReady, match="not checked yet"):
        h.ready()
    await h.prefetch()
    with pytest.raises(NotReady, match=NO_MODEL):
        h.ready()
    await publish_lockstep(bus, START, 3)
    await c.run_until_idle()
    out = await signals(bus)
    assert len(out) == 9
    assert {(s["body"]["direction"], s["body"]["confidence"], s["body"]["probability"],
             s["body"]["reason"], s["body"]["model_version"]) for s in out} == \
        {(0, 0.0, 0.5, NO_MODEL, "")}

    rt = ServiceRuntime(SignalSettings(db_enabled=False), bus, consumers=[],
                        ready_checks={"model": h.ready})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_app(rt)),
                                 base_url="http://t") as cl:
        r = await cl.get("/readyz")
    assert r.status_code == 503
    assert r.json()["not_ready"] == ["model"] and NO_MODEL in r.json()["checks"]["model"]


async def test_ready_once_a_production_model_exists(bundles):
    h, _ = make(InMemoryBus(), registry(bundles))
    await h.prefetch()
    assert h.ready() is True


async def test_hot_reload_mid_stream_each_bar_once_and_equal_to_a_fresh_start(bundles):
    reg = registry(bundles)
    bus = InMemoryBus()
    h, c = make(bus, reg)
    await publish_lockstep(bus, START, 20, seed=3, consumer=c)
    reg.prod["signal"] = "v2"
    await bus.publish(MODELS_PROMOTED, promoted_env("v2"))
    await c.run_until_idle()
    await publish_lockstep(bus, START + 20, 20, seed=4, consumer=c)
    out = await signals(bus)
    keys = [(s["body"]["instrument"], s["body"]["bar_time_ms"]) for s in out]
    assert len(keys) == len(set(keys)) == 3 * 40                 # every bar once, none twice
    switch = bar_times(START, 40)[20]
    for s in out:
        want = "v2" if s["body"]["bar_time_ms"] >= switch else "v1"
        assert s["body"]["model_version"] == want
    # features re-warmed from history: after the reload the signals equal a run that had v2
    # from the start (live IC aside: it is the service's track record across versions)
    fresh, _, _ = await run_lockstep(registry(bundles, prod="v2"), seed=9)

    def pred(s):
        b = s["body"]
        return (b["instrument"], b["bar_time_ms"], b["direction"], b["probability"], b["reason"])
    after = sorted(pred(s) for s in out if s["body"]["bar_time_ms"] >= switch)
    assert after == sorted(pred(s) for s in await signals(fresh)
                           if s["body"]["bar_time_ms"] >= switch)
    assert h.status()["model_version"] == "v2"


class Crash(BaseException):
    """Stands for the process dying."""


@pytest.mark.parametrize("history", [False, True], ids=["state-only", "with-history"])
async def test_crashes_and_restarts_give_the_uninterrupted_result(bundles, history):
    # Without history the features can only come back from the saved snapshot (their warm-up
    # count is in the reason); with it, a lost state would be rebuilt, so both must agree.
    ref_bus = InMemoryBus()
    ref_reg = registry(bundles)
    ref_reg.promote_later("v2")         # the registry promotes v2 after the cold start
    _, ref = make(ref_bus, ref_reg, history=history)
    await publish_lockstep(ref_bus, START, 30, seed=5)
    await ref_bus.publish(MODELS_PROMOTED, promoted_env("v2"))
    await publish_lockstep(ref_bus, START + 30, 10, seed=6)
    await ref.run_until_idle()
    expect = [(s["event_id"], content(s)) for s in await signals(ref_bus)]

    bus = InMemoryBus()
    reg = registry(bundles)
    reg.promote_later("v2")
    await publish_lockstep(bus, START, 30, seed=5)
    await bus.publish(MODELS_PROMOTED, promoted_env("v2"))
    await publish_lockstep(bus, START + 30, 10, seed=6)
    real_commit = bus.commit
    plan = {17: "before", 40: "after", 91: "before", 96: "after", 120: "before"}   # 96: promotion
    n = {"commits": 0}

    async def commit(*a, **kw):
        n["commits"] += 1
        mode = plan.get(n["commits"])
        if mode == "before":
            plan.pop(n["commits"])
            raise Crash()
        await real_commit(*a, **kw)
        if mode == "after":
            plan.pop(n["commits"])
            raise Crash()
    bus.commit = commit
    restarts = 0
    while True:
        _, c = make(bus, reg, history=history)   # a new process: fresh handler, saved state
        try:
            await c.run_until_idle()
            break
        except Crash:
            restarts += 1
    assert restarts == 5
    got = [(s["event_id"], content(s)) for s in await signals(bus)]
    assert sorted(got) == sorted(expect)
    assert len(got) == 3 * 40
    assert await bus.length(dlq(MODELS_PROMOTED)) == 0        # the promotion was taken


async def test_registry_outage_is_retried_not_dead_lettered(bundles):
    reg = registry(bundles)
    bus = InMemoryBus()
    h, c = make(bus, reg)
    await publish_lockstep(bus, START, 2)
    await c.run_until_idle()
    reg.fail_next = 2
    reg.promote("v2")
    await bus.publish(MODELS_PROMOTED, promoted_env("v2"))
    await c.run_until_idle()
    assert await bus.length(dlq(MODELS_PROMOTED)) == 0
    assert h.engine.model_version == "v2"


async def test_unusable_promotion_is_dead_lettered_and_the_model_stays(bundles):
    reg = registry(bundles)
    reg.add("vbad", b"PK\x03\x04 not a bundle")
    bus = InMemoryBus()
    _, c = make(bus, reg)
    await publish_lockstep(bus, START, 2)
    await c.run_until_idle()
    reg.promote("vbad")
    await bus.publish(MODELS_PROMOTED, promoted_env("vbad"))
    await bus.publish(MODELS_PROMOTED, promoted_env("v404"))
    await bus.publish(MODELS_PROMOTED, promoted_env("r9", kind="regime"))   # not ours: ignored
    await bus.publish(MODELS_PROMOTED, promoted_env("v2"))   # a candidate: a forged promotion
    await c.run_until_idle()
    dead = await bus.entries(dlq(MODELS_PROMOTED))
    assert len(dead) == 3
    assert "unusable" in dead[0][1]["dlq_reason"] and "not in the registry" in dead[1][1]["dlq_reason"]
    assert "is candidate in the registry, not production" in dead[2][1]["dlq_reason"]
    await publish_lockstep(bus, START + 2, 1)
    await c.run_until_idle()
    assert {s["body"]["model_version"] for s in await signals(bus)} == {"v1"}
    assert await bus.length(SIGNAL_TL) == 9


async def test_bad_bar_is_dead_lettered_and_the_service_goes_on(bundles):
    hb = load_bars("ETHUSDT")[START]
    good = bar_env("ETHUSDT", hb)
    bad = msgspec.structs.replace(good, body=msgspec.structs.replace(good.body, low=Decimal(0)))
    bus = InMemoryBus()
    _, c = make(bus, registry(bundles))
    await bus.publish(MD_BAR, bad)
    await publish_lockstep(bus, START, 1)          # includes the good ETH bar of that time
    await c.run_until_idle()
    assert await bus.length(dlq(MD_BAR)) == 1
    assert await bus.length(SIGNAL_TL) == 3
