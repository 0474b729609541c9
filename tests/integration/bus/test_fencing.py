"""The writer fence in the commit itself: Redis' commit script (Redis 7 and the embedded 6.2) and
the in-memory bus, the same cases on each. A commit carrying a superseded generation writes
nothing (no output, no state, no ack, no dead letter); the newest generation's commit lands; a
restarted instance (a new consumer) takes a new generation; a transport restart of the same one
keeps it."""

from __future__ import annotations

import pytest
from tm_common.bus import Consumer, LostOwnership, Output, WriterSuperseded
from tm_common.bus.lifecycle import generation_key
from tm_common.bus.redis import RedisStreamsBus
from tm_common.errors import TradeMatrixError
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event

pytestmark = pytest.mark.redis62


async def _one_delivery(bus, consumer="old"):
    await bus.publish("in", bar_event("BTCUSDT", 0))
    await bus.ensure_group("in", "g")
    [d] = await bus.read("g", consumer, ["in"], pending=False, count=1, block_ms=0)
    return d


def _out(i=9):
    return [Output("test.out", bar_event("BTCUSDT", i))]


async def test_old_generations_commit_is_refused_and_writes_nothing(bus_ns):
    bus, ns = bus_ns
    state, gen = ns + "state:g", generation_key(ns + "state:g")
    old = await bus.acquire_generation(gen)
    d = await _one_delivery(bus)
    await bus.commit("g", "old", d, [], (state, b"before"), (gen, old))  # lands: newest so far
    d = await _one_delivery(bus)
    new = await bus.acquire_generation(gen)                  # a second instance starts
    assert new == old + 1
    with pytest.raises(WriterSuperseded) as e:
        await bus.commit("g", "old", d, _out(), (state, b"stale"), (gen, old))
    assert (e.value.group, e.value.generation, e.value.current) == ("g", old, new)
    assert isinstance(e.value, LostOwnership) and isinstance(e.value, TradeMatrixError)
    with pytest.raises(WriterSuperseded):
        await bus.dead_letter("g", "old", d, "stale dead letter", (gen, old))
    assert await bus.length("test.out") == 0                 # no output
    assert await bus.load_state(state) == b"before"          # no state write
    assert await bus.length("in.dlq") == 0                   # no dead letter
    assert (await bus.group_info("in"))[0]["pending"] == 1   # no ack


async def test_new_generations_commit_lands(bus_ns):
    bus, ns = bus_ns
    state, gen = ns + "state:g", generation_key(ns + "state:g")
    old = await bus.acquire_generation(gen)
    d = await _one_delivery(bus)
    new = await bus.acquire_generation(gen)
    assert await bus.take_over("g", "new", ["in"]) == 1      # the new writer owns it now
    with pytest.raises(WriterSuperseded):                     # the fence is checked first
        await bus.commit("g", "old", d, _out(), (state, b"stale"), (gen, old))
    [d2] = await bus.read("g", "new", ["in"], pending=True, count=1, block_ms=0)
    assert d2.entry_id == d.entry_id and d2.deliveries == 2  # the take-over counted no delivery
    await bus.commit("g", "new", d2, _out(), (state, b"fresh"), (gen, new))
    assert await bus.length("test.out") == 1
    assert await bus.load_state(state) == b"fresh"
    assert (await bus.group_info("in"))[0]["pending"] == 0
    # without a fence (a stateless consumer), the per-entry ownership check still holds
    d3 = await _one_delivery(bus, "slow")
    await bus.take_over("g", "fast", ["in"])
    with pytest.raises(LostOwnership) as lost:
        await bus.commit("g", "slow", d3, _out(8))
    assert not isinstance(lost.value, WriterSuperseded)


async def test_a_lost_generation_key_is_set_back_by_the_next_commit(bus_ns):
    """Redis restarted from an older snapshot (or the key deleted): the generation only grows,
    so the instance holding the newest one keeps committing and writes it back."""
    bus, ns = bus_ns
    state, gen = ns + "state:g", generation_key(ns + "state:g")
    await bus.acquire_generation(gen)
    mine = await bus.acquire_generation(gen)
    if isinstance(bus, RedisStreamsBus):
        await bus.r.delete(gen)
    else:
        bus._generations.pop(gen)
    d = await _one_delivery(bus)
    await bus.commit("g", "old", d, [], (state, b"x"), (gen, mine))
    assert await bus.confirm_generation(gen, mine) is None
    assert await bus.confirm_generation(gen, mine - 1) == mine
    assert await bus.acquire_generation(gen) == mine + 1


def _consumer(bus, ns, name, handler=None):
    return Consumer(bus, handler or CountingHandler(), group="g", consumer=name, streams=["in"],
                    state_key=ns + "state:g", block_ms=10, retry_backoff_s=0.001)


async def test_a_restart_takes_a_new_generation_a_transport_restart_keeps_it(bus_ns):
    bus, ns = bus_ns
    first = _consumer(bus, ns, "risk-0")
    await first.start()
    assert first.generation == 1 and first.fence == (generation_key(ns + "state:g"), 1)
    first._started = False                      # what a transport error does: start over
    await first.start()
    assert first.generation == 1 and first.superseded is None
    await bus.publish("in", bar_event("BTCUSDT", 0))
    assert await first.run_until_idle() == 1

    again = _consumer(bus, ns, "risk-0")        # the same instance restarted: a new process
    await again.start()
    assert again.generation == 2
    await bus.publish("in", bar_event("BTCUSDT", 1))
    assert await first.step(block_ms=None) == 0     # reads, handles, is refused, stops
    assert isinstance(first.superseded, WriterSuperseded) and first.stopping
    assert first.superseded.current == 2
    assert await first.step(block_ms=None) == 0     # and never reads again
    assert await again.run_until_idle() == 1    # the new one took the refused entry over
    assert await bus.load_state(ns + "state:g") == b"2"

    third = _consumer(bus, ns, "risk-1")        # a third instance starts while `again` is
    await third.start()                         # cut off from Redis
    assert third.generation == 3
    again._started = False                      # `again` starts over after its transport error:
    await again.start()                         # it finds generation 3 and does not take it back
    assert again.superseded is not None and again.superseded.current == 3
    assert not again._started and again.stopping
    assert await bus.confirm_generation(generation_key(ns + "state:g"), 3) is None
