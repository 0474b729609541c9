"""Bars published once even when the reply to the publication is lost (a Redis killed right after
running the transaction, as in the fault drill): the retry reads the saved tracker again instead
of trusting the one in memory, so it does not publish the bars a second time. Real Redis behind
a TCP proxy that drops one reply."""

import json

import pytest
from tm_common.bus.protocol import TransportError
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR
from tm_common.testing.factories import bar_event
from tm_common.testing.netfault import ReplyDropProxy
from tm_ingest.publisher import BarPublisher


async def test_retry_after_a_lost_reply_publishes_nothing_twice(redis_url, namespace):
    proxy = await ReplyDropProxy.before(redis_url)
    bus = RedisStreamsBus(proxy.proxied(redis_url), prefix=namespace)
    direct = RedisStreamsBus(redis_url, prefix=namespace)
    pub = BarPublisher(bus, namespace + "state:ingest")
    await pub.load()
    bars = [bar_event(s, i).body for i in range(2) for s in ("BTCUSDT", "ETHUSDT")]
    try:
        assert len(await pub.publish_bars(bars[:2])) == 2
        proxy.drop_reply_after(b"EVALSHA")                # the publication runs, no answer
        with pytest.raises(TransportError):
            await pub.publish_bars(bars[2:])
        assert await pub.publish_bars(bars[2:]) == []     # the retry: already published
        later = [bar_event(s, 2).body for s in ("BTCUSDT", "ETHUSDT")]
        assert len(await pub.publish_bars(later)) == 2
    finally:
        await bus.close()
        await proxy.close()
    got = [json.loads(f["body"]) for _, f in await direct.entries(MD_BAR, 100)]
    await direct.close()
    keys = [(g["instrument"], g["open_time_ms"]) for g in got]
    assert len(keys) == len(set(keys)) == 6
