"""Delivery semantics of the consumer loop on the in-memory transport."""

import asyncio
import json

import pytest
from tm_common.bus import InMemoryBus
from tm_common.errors import PermanentError, TransientError
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event

from .conftest import Crash, consumer, publish


async def outputs(bus):
    return [json.loads(f["body"]) for _, f in await bus.entries("test.out")]


async def test_crash_before_commit_redelivers_without_output():
    bus = InMemoryBus()
    await publish(bus, 5)

    def hook(ev, n):
        if ev.body.open_time_ms == bar_event("BTCUSDT", 2).body.open_time_ms:
            raise Crash()
    c = consumer(bus, CountingHandler(hook=hook))
    with pytest.raises(Crash):
        await c.run_until_idle()
    assert [o["confidence"] for o in await outputs(bus)] == [1.0, 2.0]
    # restart: a fresh consumer with the same name drains its pending entry first
    c2 = consumer(bus, CountingHandler())
    await c2.run_until_idle()
    outs = await outputs(bus)
    assert [o["confidence"] for o in outs] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len({o["bar_time_ms"] for o in outs}) == 5


async def test_crash_after_commit_gives_no_duplicate():
    bus = InMemoryBus()
    await publish(bus, 4)
    real_commit = bus.commit
    calls = {"n": 0}

    async def commit_then_die(*a, **kw):
        await real_commit(*a, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash()
    bus.commit = commit_then_die
    with pytest.raises(Crash):
        await consumer(bus, CountingHandler()).run_until_idle()
    bus.commit = real_commit
    await consumer(bus, CountingHandler()).run_until_idle()
    assert [o["confidence"] for o in await outputs(bus)] == [1.0, 2.0, 3.0, 4.0]


async def test_dead_consumer_entries_are_reclaimed():
    bus = InMemoryBus()
    await publish(bus, 6)
    c = consumer(bus, CountingHandler(), name="alive", reclaim_idle_ms=0, reclaim_interval_s=0)
    await c.start()                      # (a writer takes over what is pending at its start)
    taken = await bus.read("g", "dead", ["in"], pending=False, count=4, block_ms=0)
    assert len(taken) == 4               # the dead consumer holds 4 entries, never acks
    await c.run_until_idle()             # handles the 2 it can see
    assert len(await outputs(bus)) == 2
    await c._maybe_reclaim()
    await c.run_until_idle()
    outs = await outputs(bus)
    assert sorted(o["bar_time_ms"] for o in outs) == sorted(
        bar_event("BTCUSDT", i).body.open_time_ms for i in range(6))
    assert (await bus.group_info("in"))[0]["pending"] == 0


async def test_poison_entry_goes_to_dlq_after_cap_and_next_flows():
    bus = InMemoryBus()
    await publish(bus, 3)
    bad = bar_event("BTCUSDT", 1).body.open_time_ms
    attempts = []

    def hook(ev, n):
        if ev.body.open_time_ms == bad:
            attempts.append(n)
            raise ValueError("boom")
    c = consumer(bus, CountingHandler(hook=hook), max_deliveries=3)
    await c.run_until_idle()
    assert len(attempts) == 3
    dlq = await bus.entries("in.dlq")
    assert len(dlq) == 1 and "failed 3 attempts" in dlq[0][1]["dlq_reason"]
    assert "ValueError: boom" in dlq[0][1]["dlq_reason"]
    assert [o["confidence"] for o in await outputs(bus)] == [1.0, 2.0]   # state rolled back
    assert (await bus.group_info("in"))[0]["pending"] == 0


async def test_delivery_cap_across_restarts():
    """An entry that kills the process every time is dead-lettered by its delivery count."""
    bus = InMemoryBus()
    await publish(bus, 2)

    def hook(ev, n):
        if ev.body.open_time_ms == bar_event("BTCUSDT", 0).body.open_time_ms:
            raise Crash()
    for _ in range(3):
        with pytest.raises(Crash):
            await consumer(bus, CountingHandler(hook=hook), max_deliveries=3).run_until_idle()
    await consumer(bus, CountingHandler(hook=hook), max_deliveries=3).run_until_idle()
    dlq = await bus.entries("in.dlq")
    assert len(dlq) == 1 and "delivery cap 3 exceeded" in dlq[0][1]["dlq_reason"]
    assert len(await outputs(bus)) == 1


@pytest.mark.parametrize("fields, reason", [
    ({"type": "bar.closed", "body": "{"}, "missing envelope field"),
    ({**bar_event().to_fields(), "body": "{bad json"}, "invalid body"),
    ({**bar_event().to_fields(), "type": "no.such"}, "unknown event type"),
])
async def test_malformed_to_dlq_consumer_alive(fields, reason):
    bus = InMemoryBus()
    await bus.publish_raw("in", fields)
    await publish(bus, 2, start=5)
    c = consumer(bus, CountingHandler())
    await c.run_until_idle()
    dlq = await bus.entries("in.dlq")
    assert len(dlq) == 1 and reason in dlq[0][1]["dlq_reason"]
    assert dlq[0][1]["type"] == fields["type"]       # original fields kept: nothing lost
    assert len(await outputs(bus)) == 2


async def test_permanent_error_dead_letters_at_once_transient_retries():
    bus = InMemoryBus()
    await publish(bus, 2)
    seen = {"t": 0}

    def hook(ev, n):
        if ev.body.open_time_ms == bar_event("BTCUSDT", 0).body.open_time_ms:
            raise PermanentError("bad instrument")
        seen["t"] += 1
        if seen["t"] <= 8:                   # more than max_deliveries: transient is not capped
            raise TransientError("venue busy")
    await consumer(bus, CountingHandler(hook=hook), max_deliveries=2).run_until_idle()
    dlq = await bus.entries("in.dlq")
    assert len(dlq) == 1 and "permanent error" in dlq[0][1]["dlq_reason"]
    outs = await outputs(bus)
    assert [o["confidence"] for o in outs] == [1.0]


async def test_stop_finishes_in_flight_and_loses_nothing():
    bus = InMemoryBus()
    await publish(bus, 50)
    h = CountingHandler(sleep_s=0.002)
    c = consumer(bus, h, block_ms=20)
    task = asyncio.create_task(c.run())
    await asyncio.sleep(0.03)
    c.stop()
    await asyncio.wait_for(task, 5)
    first = len(await outputs(bus))
    assert 0 < first < 50
    await consumer(bus, CountingHandler()).run_until_idle()
    outs = await outputs(bus)
    assert [o["confidence"] for o in outs] == [float(i) for i in range(1, 51)]
    assert len({o["bar_time_ms"] for o in outs}) == 50
