"""A commit whose reply is lost (what the Redis fault drill's SIGKILL did): Redis ran the commit
(outputs, ack, state) but the client's connection closed before the answer. The entry is acked
and never comes back, so the consumer must go on from the state saved in Redis, not from the
state it had in memory before the commit (which misses that entry: the portfolio lost a fill).
Real Redis behind a TCP proxy that drops one reply."""

import asyncio
import json

from tm_common.bus import Consumer
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event
from tm_common.testing.netfault import ReplyDropProxy


async def test_state_after_a_lost_commit_reply_is_the_saved_one(redis_url, namespace):
    proxy = await ReplyDropProxy.before(redis_url)
    bus = RedisStreamsBus(proxy.proxied(redis_url), prefix=namespace)
    direct = RedisStreamsBus(redis_url, prefix=namespace)
    handler = CountingHandler()
    consumer = Consumer(bus, handler, group="g", consumer="c1", streams=["in"],
                        state_key=namespace + "state:g", block_ms=50, retry_backoff_s=0.05)
    task = asyncio.create_task(consumer.run())
    try:
        for i in range(3):
            await direct.publish("in", bar_event("BTCUSDT", i))
        await _until(lambda: consumer.handled_count == 3)
        proxy.drop_reply_after(b"EVALSHA")                  # the next commit: reply lost
        await direct.publish("in", bar_event("BTCUSDT", 3))
        await asyncio.wait_for(proxy.dropped.wait(), 10)
        for i in range(4, 6):
            await direct.publish("in", bar_event("BTCUSDT", i))
        outs = []
        for _ in range(400):
            outs = [json.loads(f["body"]) for _, f in await direct.entries("test.out", 100)]
            if len(outs) >= 6:
                break
            await asyncio.sleep(0.025)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
        await bus.close()
        await proxy.close()
    # Outputs numbered 1..6: the lost reply's commit counted once, the state went on from it.
    assert [o["confidence"] for o in outs] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert int(await direct.load_state(namespace + "state:g")) == 6
    info = (await direct.group_info("in"))[0]
    assert info["pending"] == 0 and info["lag"] == 0
    await direct.close()


async def _until(pred, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
