"""Commit batching on real Redis (7, and the embedded 6.2): worker processes that commit a read's
entries together crash before and after a batch's commit, are stopped under load, and lose the
ownership of one entry of a batch; nothing is lost, nothing is published twice."""

import pytest
from tm_common.bus import Consumer, LostOwnership, Output
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event
from tm_common.testing.worker_runs import (
    assert_exactly_once,
    group,
    outputs,
    publish,
    run_worker,
    t,
)

from .conftest import check_sigterm_under_load

pytestmark = pytest.mark.redis62


async def test_a_crash_inside_a_batch_publishes_none_of_it(any_redis_url, namespace):
    url, ns = any_redis_url, namespace
    await publish(url, ns, 6)
    rc, _, _ = run_worker(url, ns, W_BATCH=16, W_CRASH=f"before:{t(3)}")
    assert rc == 17
    assert await outputs(url, ns) == []                 # 0..2 were handled, never committed
    assert (await group(url, ns))["pending"] == 6
    rc, _, err = run_worker(url, ns, W_BATCH=16)
    assert rc == 0, err
    assert_exactly_once(await outputs(url, ns), 6)
    assert (await group(url, ns))["pending"] == 0


async def test_a_crash_after_a_batch_commit_gives_no_duplicate(any_redis_url, namespace):
    url, ns = any_redis_url, namespace
    await publish(url, ns, 6)
    rc, _, _ = run_worker(url, ns, W_BATCH=16, W_CRASH=f"after:{t(2)}")
    assert rc == 18
    assert len(await outputs(url, ns)) == 6             # the batch landed whole, then the crash
    rc, _, err = run_worker(url, ns, W_BATCH=16)
    assert rc == 0, err
    assert_exactly_once(await outputs(url, ns), 6)


async def test_sigterm_under_load_with_batches_loses_nothing(any_redis_url, namespace):
    await check_sigterm_under_load(any_redis_url, namespace, 300, W_BATCH=16)


async def test_a_batch_with_one_entry_reclaimed_writes_nothing(any_redis_url, namespace):
    bus = RedisStreamsBus(any_redis_url, prefix=namespace)
    for i in range(3):
        await bus.publish("in", bar_event("BTCUSDT", i))
    await bus.ensure_group("in", "g")
    ds = await bus.read("g", "slow", ["in"], pending=False, count=3, block_ms=0)
    assert len(ds) == 3
    # another consumer takes the middle entry over (as the reclaimer does after an idle time)
    claimed = await bus.r.xclaim(bus.key("in"), "g", "fast", 0, [ds[1].entry_id])
    assert len(claimed) == 1
    items = [(d, [Output("test.out", bar_event("BTCUSDT", 10 + i))]) for i, d in enumerate(ds)]
    with pytest.raises(LostOwnership):
        await bus.commit_many("g", "slow", items, (namespace + "state:x", b"1"))
    assert await bus.length("test.out") == 0
    assert await bus.load_state(namespace + "state:x") is None
    assert (await bus.group_info("in"))[0]["pending"] == 3  # no ack either
    await bus.close()


async def test_batched_and_per_entry_commits_publish_the_same(any_redis_url, namespace):
    async def run(batch: int, ns: str) -> list:
        bus = RedisStreamsBus(any_redis_url, prefix=ns)
        for i in range(20):
            await bus.publish("in", bar_event("BTCUSDT", i))
        c = Consumer(bus, CountingHandler(), group="g", consumer="c", streams=["in"],
                     state_key=ns + "state:g", clock=lambda: 7, commit_batch=batch,
                     commit_batch_s=60.0)
        await c.run_until_idle()
        rows = [f for _, f in await bus.entries("test.out")]
        writes = c.stages.state_writes
        assert await bus.load_state(ns + "state:g") == b"20"
        await bus.close()
        return [rows, writes]
    one, many = await run(1, namespace + "one:"), await run(16, namespace + "many:")
    assert one[0] == many[0] and len(one[0]) == 20
    assert (one[1], many[1]) == (20, 2)                 # 16 + 4
