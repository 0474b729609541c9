"""Commit batching (a read's entries committed together) on the in-memory transport: the same
outputs and state as one commit per entry, nothing committed for a batch a crash cut short,
a failing handler undoes the whole batch, a dead letter commits what came before it."""

import json

import pytest
from tm_common.bus import InMemoryBus
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event

from .conftest import Crash, publish
from .conftest import consumer as base_consumer


def consumer(bus, handler, name="c1", **kw):
    """The folder's consumer, batching commits (``commit_batch=16``, ``commit_batch_s=60``) unless
    told otherwise."""
    kw.setdefault("commit_batch", 16)
    kw.setdefault("commit_batch_s", 60.0)
    return base_consumer(bus, handler, name, **kw)


async def outputs(bus):
    return [f for _, f in await bus.entries("test.out")]


def confidences(outs):
    return [json.loads(f["body"])["confidence"] for f in outs]


async def run_clean(n, **kw):
    bus = InMemoryBus()
    await publish(bus, n)
    c = consumer(bus, CountingHandler(), **kw)
    await c.run_until_idle()
    return bus, c


async def test_a_batch_gives_the_outputs_and_state_of_one_commit_per_entry():
    one, c1 = await run_clean(10, commit_batch=1)
    many, cm = await run_clean(10, commit_batch=16)
    assert await outputs(many) == await outputs(one)          # same fields, same ids, same order
    assert await many.load_state("state:g") == await one.load_state("state:g") == b"10"
    assert c1.stages.state_writes == 10
    assert cm.stages.state_writes == 1                        # one commit for the read of 10
    assert (await many.group_info("in"))[0]["pending"] == 0


async def test_the_batch_size_bounds_a_commit():
    _, c = await run_clean(10, commit_batch=4)
    assert c.stages.state_writes == 3                         # 4 + 4 + 2


async def test_a_crash_inside_a_batch_commits_nothing_of_it_and_loses_nothing():
    bus = InMemoryBus()
    await publish(bus, 6)

    def hook(ev, n):
        if ev.body.open_time_ms == bar_event("BTCUSDT", 3).body.open_time_ms:
            raise Crash()
    with pytest.raises(Crash):
        await consumer(bus, CountingHandler(hook=hook)).run_until_idle()
    assert await outputs(bus) == []                           # handled, never committed
    assert (await bus.group_info("in"))[0]["pending"] == 6
    await consumer(bus, CountingHandler()).run_until_idle()
    assert confidences(await outputs(bus)) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


async def test_a_handler_failure_inside_a_batch_undoes_it_and_retries_in_order():
    bus = InMemoryBus()
    await publish(bus, 6)
    failed = []

    def hook(ev, n):
        if ev.body.open_time_ms == bar_event("BTCUSDT", 3).body.open_time_ms and not failed:
            failed.append(n)
            raise RuntimeError("once")
    c = consumer(bus, CountingHandler(hook=hook))
    await c.run_until_idle()
    assert failed == [4]
    clean, _ = await run_clean(6)
    assert await outputs(bus) == await outputs(clean)         # exactly once, in order
    assert await bus.load_state("state:g") == b"6"


async def test_a_dead_letter_inside_a_batch_commits_what_came_before_it():
    bus = InMemoryBus()
    await publish(bus, 2)
    await bus.publish_raw("in", {"type": "nonsense"})
    await publish(bus, 2, start=2)
    await consumer(bus, CountingHandler()).run_until_idle()
    outs = await outputs(bus)
    assert confidences(outs) == [1.0, 2.0, 3.0, 4.0]
    assert [json.loads(f["body"])["bar_time_ms"] for f in outs] == \
        [bar_event("BTCUSDT", i).body.open_time_ms for i in range(4)]
    dlq = await bus.entries("in.dlq")
    assert len(dlq) == 1 and dlq[0][1]["dlq_reason"].startswith("malformed")
    assert (await bus.group_info("in"))[0]["pending"] == 0


async def test_a_consumer_without_snapshots_saves_no_state_and_stops_on_a_failure():
    """The in-process backtest's consumers (``skip_snapshots``): no state written per commit; a
    handler failure cannot be undone, so it stops the run instead of going on from it."""
    from tm_common.bus.lifecycle import NoSnapshot

    bus = InMemoryBus()
    await publish(bus, 3)
    c = consumer(bus, CountingHandler())
    c.skip_snapshots()
    await c.run_until_idle()
    assert confidences(await outputs(bus)) == [1.0, 2.0, 3.0]
    assert await bus.load_state("state:g") is None
    assert c.stages.state_writes == 0

    def hook(ev, n):
        raise RuntimeError("bug")
    await publish(bus, 1, start=3)
    c2 = consumer(bus, CountingHandler(hook=hook), name="c2")
    c2.skip_snapshots()
    with pytest.raises(NoSnapshot, match="cannot be undone"):
        await c2.run_until_idle()
