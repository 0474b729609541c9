"""A source's checked publication (``publish_many(..., expect=)``), the same cases on the
in-memory bus, Redis 7 and the embedded Redis 6.2 (the ``PUBLISH`` script): it lands only on
the state it expects, and a refused one writes nothing (no event, no state)."""

from __future__ import annotations

import pytest
from tm_common.bus import Output, StateChanged
from tm_common.testing.factories import bar_event

pytestmark = pytest.mark.redis62


def _outs(*opens: int) -> list[Output]:
    return [Output("md.bar", bar_event("BTCUSDT", i)) for i in opens]


async def _opens(bus) -> list[int]:
    import json
    return [json.loads(f["body"])["open_time_ms"] for _, f in await bus.entries("md.bar", 100)]


async def test_a_publication_lands_on_the_state_it_expects(bus_ns):
    bus, ns = bus_ns
    key = ns + "state:ingest:publisher"
    ids = await bus.publish_many(_outs(0, 1), state=(key, b"one"), expect=b"")
    assert len(ids) == 2 and len(set(ids)) == 2
    assert await bus.load_state(key) == b"one"
    assert len(await bus.publish_many(_outs(2), state=(key, b"two"), expect=b"one")) == 1
    assert await bus.load_state(key) == b"two"
    assert len(await _opens(bus)) == 3


@pytest.mark.parametrize("expect", [b"", b"one", b"three"])
async def test_a_publication_on_another_state_writes_nothing(bus_ns, expect):
    bus, ns = bus_ns
    key = ns + "state:ingest:publisher"
    await bus.publish_many(_outs(0), state=(key, b"two"))          # another instance's
    before = await _opens(bus)
    with pytest.raises(StateChanged, match="another instance published first"):
        await bus.publish_many(_outs(1, 2), state=(key, b"mine"), expect=expect)
    assert await bus.load_state(key) == b"two"
    assert await _opens(bus) == before


async def test_an_unchecked_publication_is_unchanged(bus_ns):
    bus, ns = bus_ns
    key = ns + "state:ingest:publisher"
    await bus.publish_many(_outs(0), state=(key, b"two"))
    await bus.publish_many(_outs(1), state=(key, b"three"))        # no expect: no check
    assert await bus.load_state(key) == b"three"
    assert len(await _opens(bus)) == 2
