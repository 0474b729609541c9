"""The consumer loop on a signed stream (in memory): an unsigned or wrongly signed entry is
dead-lettered with the reason before the handler sees it, and counted; a signed one is handled.
The transports sign what they publish and commit (publish, publish_many, commit)."""

from __future__ import annotations

import json

from tm_common.bus import Consumer, InMemoryBus, KeyRing
from tm_common.bus.protocol import Output
from tm_common.bus.signing import SIG_FIELD
from tm_common.metrics import ServiceMetrics
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event

STREAM = "risk.order"          # any stream the ring holds a key for is checked the same way
KEY, OTHER = "k" * 40, "o" * 40


def consumer(bus, handler, keys, metrics=None):
    return Consumer(bus, handler, group="executor", consumer="c1", streams=[STREAM],
                    state_key="state:executor", clock=lambda: 42, retry_backoff_s=0.001,
                    keys=keys, observer=None if metrics is None else metrics.observer)


async def test_unsigned_and_forged_entries_are_dead_lettered_unseen_and_counted():
    ring = KeyRing({STREAM: KEY})
    bus = InMemoryBus(keys=ring)                              # the producer holds the key
    await bus.publish(STREAM, bar_event("BTCUSDT", 0))          # signed
    # a writer without the key (XADD rights only), then one with another key
    await bus.publish_raw(STREAM, KeyRing().fields(STREAM, bar_event("BTCUSDT", 1)))
    await bus.publish_raw(STREAM, KeyRing({STREAM: OTHER}).fields(STREAM, bar_event("BTCUSDT", 2)))
    (_, signed), = [e for e in await bus.entries(STREAM)][:1]
    tampered = {**signed, "body": signed["body"].replace('"close":"', '"close":"9')}
    await bus.publish_raw(STREAM, tampered)                     # a valid entry, altered
    await bus.publish(STREAM, bar_event("BTCUSDT", 4))          # signed

    handler, metrics = CountingHandler(), ServiceMetrics("executor", "t", process_collectors=False)
    c = consumer(bus, handler, ring, metrics)
    await c.run_until_idle()

    assert handler.n == 2                                       # only the two signed entries
    dead = [f for _, f in await bus.entries(STREAM + ".dlq")]
    assert [f["dlq_reason"].split(":")[0] for f in dead] == ["unsigned", "bad signature",
                                                              "bad signature"]
    assert all(f["dlq_group"] == "executor" for f in dead)
    text = metrics.exposition().decode()
    assert ('tm_consumer_signature_refused_total{group="executor",reason="unsigned",'
            'stream="risk.order"} 1.0') in text
    assert ('tm_consumer_signature_refused_total{group="executor",reason="bad signature",'
            'stream="risk.order"} 2.0') in text
    assert 'tm_events_dead_lettered_total{stream="risk.order",type="?"} 3.0' in text


async def test_without_the_key_nothing_is_checked_and_with_it_everything_is():
    bus = InMemoryBus()
    await bus.publish(STREAM, bar_event("BTCUSDT", 0))
    unchecked = CountingHandler()
    await consumer(bus, unchecked, KeyRing()).run_until_idle()
    assert unchecked.n == 1
    bus2 = InMemoryBus()
    await bus2.publish(STREAM, bar_event("BTCUSDT", 0))
    checked = CountingHandler()
    await consumer(bus2, checked, KeyRing({STREAM: KEY})).run_until_idle()
    assert checked.n == 0 and await bus2.length(STREAM + ".dlq") == 1


async def test_every_publishing_path_signs_its_entries():
    ring = KeyRing({STREAM: KEY, "test.out": KEY})
    bus = InMemoryBus(keys=ring)
    await bus.publish(STREAM, bar_event("BTCUSDT", 0))
    await bus.publish_many([Output(STREAM, bar_event("BTCUSDT", 1))])
    await consumer(bus, CountingHandler(), ring).run_until_idle()       # commits to test.out
    for stream in (STREAM, "test.out"):
        for _, f in await bus.entries(stream):
            assert ring.refusal(stream, f) is None and len(f[SIG_FIELD]) == 64
    out = [json.loads(f["body"]) for _, f in await bus.entries("test.out")]
    assert [o["confidence"] for o in out] == [1.0, 2.0]
