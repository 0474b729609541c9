"""Delivery invariants on real Redis (7 from TM_TEST_REDIS_URL, and the embedded 6.2), with real
worker processes that crash, are killed, or are stopped with SIGTERM."""

import asyncio
import os
import signal
import time

import pytest
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event
from tm_common.testing.worker_runs import (
    assert_exactly_once,
    group,
    outputs,
    publish,
    run_worker,
    start_worker,
    t,
)

from .conftest import check_sigterm_under_load

pytestmark = pytest.mark.redis62


async def test_crash_before_commit_redelivers(any_redis_url, namespace):
    url, ns = any_redis_url, namespace
    await publish(url, ns, 6)
    rc, out, _ = run_worker(url, ns, W_CRASH=f"before:{t(3)}")
    assert rc == 17
    assert len(await outputs(url, ns)) == 3            # nothing published for the crashed input
    assert (await group(url, ns))["pending"] >= 1
    rc, out, err = run_worker(url, ns)
    assert rc == 0, err
    assert_exactly_once(await outputs(url, ns), 6)
    assert (await group(url, ns))["pending"] == 0


async def test_crash_after_commit_no_duplicate(any_redis_url, namespace):
    url, ns = any_redis_url, namespace
    await publish(url, ns, 6)
    rc, _, _ = run_worker(url, ns, W_CRASH=f"after:{t(2)}")
    assert rc == 18
    rc, _, err = run_worker(url, ns)
    assert rc == 0, err
    assert_exactly_once(await outputs(url, ns), 6)


async def test_killed_consumer_pending_reclaimed_by_another(any_redis_url, namespace):
    url, ns = any_redis_url, namespace
    await publish(url, ns, 40)
    p = start_worker(url, ns, W_CONSUMER="victim", W_SLEEP_S=0.05)
    assert p.stdout.readline().strip() == "ready"
    deadline = time.time() + 20
    while len(await outputs(url, ns)) < 3 and time.time() < deadline:
        await asyncio.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    g = await group(url, ns)
    assert g["pending"] >= 1                               # it died holding entries
    await asyncio.sleep(0.3)
    rc, out, err = run_worker(url, ns, W_CONSUMER="rescuer", W_RECLAIM_MS=200)
    assert rc == 0, err
    outs = await outputs(url, ns)
    assert sorted(o["bar_time_ms"] for o in outs) == [t(i) for i in range(40)]
    assert (await group(url, ns))["pending"] == 0


async def test_sigterm_under_load_loses_nothing_handles_nothing_twice(any_redis_url, namespace):
    await check_sigterm_under_load(any_redis_url, namespace, 300)


async def test_poison_and_malformed_go_to_dlq(any_redis_url, namespace):
    url, ns = any_redis_url, namespace
    bus = RedisStreamsBus(url, prefix=ns)
    await bus.publish("in", bar_event("BTCUSDT", 0))
    await bus.publish_raw("in", {"type": "bar.closed", "body": "{"})
    await bus.publish_raw("in", {**bar_event("BTCUSDT", 1).to_fields(), "body": b"\xff\xfe"})
    await bus.publish_raw("in", {**bar_event("BTCUSDT", 2).to_fields(), "type": "bar.unknown"})
    await bus.publish("in", bar_event("BTCUSDT", 3))
    await bus.publish("in", bar_event("BTCUSDT", 4))

    def hook(ev, n):
        if ev.body.open_time_ms == t(3):
            raise RuntimeError("always fails")
    c = Consumer(bus, CountingHandler(hook=hook), group="g", consumer="c", streams=["in"],
                 state_key=ns + "state:g", max_deliveries=3, retry_backoff_s=0.001)
    await c.run_until_idle()
    dlq = await bus.entries("in.dlq")
    reasons = [f["dlq_reason"] for _, f in dlq]
    assert len(dlq) == 4
    assert "missing envelope field" in reasons[0] and "not UTF-8" in reasons[1]
    assert "unknown event type" in reasons[2] and "failed 3 attempts" in reasons[3]
    assert [o["bar_time_ms"] for o in await outputs(url, ns)] == [t(0), t(4)]
    assert (await bus.group_info("in"))[0]["pending"] == 0
    await bus.close()


async def test_same_handler_same_outputs_on_both_transports(any_redis_url, namespace):
    events = [bar_event(sym, i) for i in range(30) for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]

    async def run(bus):
        for e in events:
            await bus.publish("in", e)
        c = Consumer(bus, CountingHandler(), group="g", consumer="c", streams=["in"],
                     state_key=namespace + "state:g", clock=lambda: 123)
        await c.run_until_idle()
        return [f for _, f in await bus.entries("test.out")]

    mem = await run(InMemoryBus())
    rb = RedisStreamsBus(any_redis_url, prefix=namespace)
    red = await run(rb)
    await rb.close()
    assert len(mem) == 90 and mem == red


async def test_outputs_and_ack_are_atomic_when_ownership_lost(any_redis_url, namespace):
    """A slow consumer whose entry was reclaimed by another cannot publish for it."""
    bus = RedisStreamsBus(any_redis_url, prefix=namespace)
    await bus.publish("in", bar_event("BTCUSDT", 0))
    await bus.ensure_group("in", "g")
    [d] = await bus.read("g", "slow", ["in"], pending=False, count=1, block_ms=0)
    assert await bus.reclaim("g", "fast", ["in"], min_idle_ms=0) == 1
    from tm_common.bus import LostOwnership, Output
    with pytest.raises(LostOwnership):
        await bus.commit("g", "slow", d, [Output("test.out", bar_event("BTCUSDT", 9))])
    assert await bus.length("test.out") == 0
    assert (await bus.group_info("in"))[0]["pending"] == 1
    await bus.close()


async def test_maxlen_trims_streams(any_redis_url, namespace, monkeypatch):
    import tm_common.bus.redis as mod
    monkeypatch.setattr(mod, "maxlen", lambda s: 100)
    bus = RedisStreamsBus(any_redis_url, prefix=namespace)
    for i in range(1000):
        await bus.publish("in", bar_event("BTCUSDT", i))
    assert 100 <= await bus.length("in") < 1000
    await bus.close()


async def test_consumer_recovers_when_its_stream_and_group_vanish(any_redis_url, namespace):
    """Redis restarted without its data (or the key deleted): groups are re-created, and the
    consumer keeps handling new entries."""
    bus = RedisStreamsBus(any_redis_url, prefix=namespace)
    c = Consumer(bus, CountingHandler(), group="g", consumer="c", streams=["in"],
                 block_ms=50, retry_backoff_s=0.01, reclaim_interval_s=0.05)
    task = asyncio.create_task(c.run())
    await bus.publish("in", bar_event("BTCUSDT", 0))
    for _ in range(200):
        if c.handled_count == 1:
            break
        await asyncio.sleep(0.01)
    await bus.r.delete(bus.key("in"))
    await asyncio.sleep(0.2)
    await bus.publish("in", bar_event("BTCUSDT", 1))
    for _ in range(300):
        if c.handled_count == 2:
            break
        await asyncio.sleep(0.01)
    c.stop()
    await asyncio.wait_for(task, 5)
    assert c.handled_count == 2
    await bus.close()
