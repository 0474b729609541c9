"""The lockstep probe's question, ``busy_groups``, answered by one server-side script on Redis 7
and the embedded 6.2: the same answer as the pipeline of ``XINFO GROUPS`` and ``XREVRANGE`` it
replaced (and falls back to), through every state a group passes: no stream, no group,
undelivered entries, delivered and unacked, acked, and several groups on one stream."""

from __future__ import annotations

import pytest
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.factories import bar_event

pytestmark = pytest.mark.redis62


async def _both(bus: RedisStreamsBus, streams: list[str]) -> list[str]:
    scripted = await bus.busy_groups(streams)
    assert scripted == await bus._busy_groups_piped(streams)
    return scripted


async def test_busy_groups_by_script_equals_the_pipeline_in_every_state(any_redis_url, namespace):
    bus = RedisStreamsBus(any_redis_url, prefix=namespace)
    streams = ["a", "b", "missing"]
    try:
        assert await _both(bus, streams) == []                    # no stream, no group
        await bus.publish("a", bar_event("BTCUSDT", 0))
        assert await _both(bus, streams) == []                    # a stream nobody consumes
        await bus.ensure_group("a", "g1")
        await bus.ensure_group("a", "g2")
        await bus.ensure_group("b", "g1")
        busy = await _both(bus, streams)                          # undelivered, both groups of a
        assert [b.split(" ")[0] for b in busy] == ["a/g1", "a/g2"]
        assert all("lag=" in b and "pending=0" in b for b in busy)
        [d] = await bus.read("g1", "c", ["a"], pending=False, count=10, block_ms=0)
        assert await _both(bus, streams) == ["a/g1 lag=0 pending=1",  # delivered, unacked
                                             busy[1]]
        await bus.commit("g1", "c", d, [])
        [d2] = await bus.read("g2", "c", ["a"], pending=False, count=10, block_ms=0)
        await bus.commit("g2", "c", d2, [])
        assert await _both(bus, streams) == []                    # every entry acked
        for i in range(3):
            await bus.publish("b", bar_event("BTCUSDT", i))
        [b] = await _both(bus, streams)
        assert b.startswith("b/g1 lag=") and b.endswith("pending=0") and "lag=0" not in b
    finally:
        await bus.close()
