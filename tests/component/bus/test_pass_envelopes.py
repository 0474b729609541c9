"""The in-process backtest's bus hands a published envelope to its consumers as it is (no JSON
round trip), and is otherwise the same bus: readers still see the entry's fields, signed when
the bus holds a key; a handler's outputs equal those of a consumer that decodes; an envelope
whose numbers would not decode (NaN) is dead-lettered, as the decoding consumer does."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.signing import KeyRing
from tm_common.events.base import Envelope
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event


async def _run(bus: InMemoryBus) -> list[tuple[str, dict]]:
    for i in range(3):
        await bus.publish("in", bar_event("BTCUSDT", i))
    c = Consumer(bus, CountingHandler(), group="g", consumer="c", streams=["in"],
                 state_key="state:g", clock=lambda: 42)
    await c.run_until_idle()
    return await bus.entries("test.out")


async def test_consumers_get_the_envelope_itself_and_outputs_equal_a_decoding_run():
    passed, decoded = InMemoryBus(pass_envelopes=True), InMemoryBus()
    assert await _run(passed) == await _run(decoded)
    ev = bar_event("ETHUSDT", 7)
    await passed.publish("x", ev)
    await passed.ensure_group("x", "g")
    [d] = await passed.read("g", "c", ["x"], pending=False, count=1, block_ms=0)
    assert d.envelope is ev and Envelope.from_fields(d.fields) == ev
    [(_, fields)] = await passed.entries("x")
    assert fields == ev.to_fields()


async def test_fields_read_from_a_passing_bus_are_signed_when_it_holds_a_key():
    ring = KeyRing({"x": b"k" * 32})
    bus = InMemoryBus(keys=ring, pass_envelopes=True)
    await bus.publish("x", bar_event("BTCUSDT", 0))
    [(_, fields)] = await bus.entries("x")
    assert ring.refusal("x", fields) is None


async def test_an_envelope_with_a_bad_number_is_dead_lettered_not_handled():
    bus = InMemoryBus(pass_envelopes=True)
    ev = bar_event("BTCUSDT", 0)
    bad = msgspec.structs.replace(ev, body=msgspec.structs.replace(ev.body, close=Decimal("NaN")))
    await bus.publish("in", bad)
    h = CountingHandler()
    c = Consumer(bus, h, group="g", consumer="c", streams=["in"], state_key="state:g")
    await c.run_until_idle()
    assert h.n == 0 and c.dead_letter_count == 1
    [(_, dl)] = await bus.entries("in.dlq")
    assert "close is not a finite number" in dl["dlq_reason"]
