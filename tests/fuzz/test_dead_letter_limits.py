"""Found by the stream fuzzer: an entry with ~16,000 fields made every dead-letter attempt fail
(Redis' commit script hands the fields to XADD through Lua's ``unpack``, which takes about 8,000
values), so the consumer task crashed, restarted and crashed again on the same pending entry
forever, and every entry behind it waited. Now the dead letter keeps the first
``MAX_DLQ_FIELDS`` fields and says how many it dropped; the consumer goes on."""

import pytest
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.memory import MAX_DLQ_FIELDS
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import dlq
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event

pytestmark = pytest.mark.redis62
WIDE = 16_000          # fields in the poison entry


async def _run(bus):
    await bus.publish_raw("in", {f"f{i}": "x" for i in range(WIDE)})
    await bus.publish("in", bar_event("BTCUSDT", 1))
    handler = CountingHandler()
    c = Consumer(bus, handler, group="g", consumer="c1", streams=["in"], block_ms=50)
    await c.run_until_idle()
    return c, handler


async def test_wide_entry_is_dead_lettered_on_redis(any_redis_url, namespace):
    bus = RedisStreamsBus(any_redis_url, prefix=namespace)
    try:
        c, handler = await _run(bus)
        assert c.dead_letter_count == 1 and handler.n == 1       # the valid entry after it
        [(_, fields)] = await bus.entries(dlq("in"))
        assert fields["dlq_fields_dropped"] == str(WIDE - MAX_DLQ_FIELDS)
        assert fields["dlq_reason"].startswith("malformed: missing envelope field")
        assert sum(1 for k in fields if k.startswith("f")) == MAX_DLQ_FIELDS
        assert (await bus.group_info("in"))[0]["pending"] == 0
    finally:
        await bus.close()


async def test_wide_entry_is_dead_lettered_in_memory():
    bus = InMemoryBus()
    c, handler = await _run(bus)
    assert c.dead_letter_count == 1 and handler.n == 1
    [(_, fields)] = await bus.entries(dlq("in"))
    assert fields["dlq_fields_dropped"] == str(WIDE - MAX_DLQ_FIELDS)
