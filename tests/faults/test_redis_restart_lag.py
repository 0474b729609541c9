"""After a Redis 7 restart (AOF), ``XINFO GROUPS`` can report a lag for entries that were
delivered and acked long ago: ``entries-read`` comes back from the last AOF rewrite only. The
lockstep replay's idle probe trusted it and waited forever (found by the Redis fault drill on a
long window, where the AOF had been rewritten). The bus now says a group has work only when the
stream holds an entry after the group's last-delivered id. A private ``redis-server``."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest
import redis
from tm_app.faults_infra import PrivateRedis
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.redis import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH")
    s = PrivateRedis(tmp_path / "redis", free_port())
    s.start()
    yield s
    s.close()


def _consume(c: redis.Redis, key: str, group: str) -> None:
    got = c.xreadgroup(group, "c1", {key: ">"}, count=100)
    for eid, _ in (got[0][1] if got else []):
        c.xack(key, group, eid)


def _restart_after_reads_past_a_rewrite(server: PrivateRedis, key: str) -> dict:
    """Deliver and ack entries before and after an AOF rewrite, restart; the group's info."""
    c = redis.Redis(port=server.port)
    c.xgroup_create(key, "g", id="0", mkstream=True)
    for i in range(3):
        c.xadd(key, {"i": i})
    _consume(c, key, "g")
    c.bgrewriteaof()                                   # entries-read 3 goes into the base file
    while c.info("persistence")["aof_rewrite_in_progress"]:
        time.sleep(0.05)
    for i in range(5):                                 # read after the rewrite: in the incr file
        c.xadd(key, {"i": i})
        _consume(c, key, "g")
    c.close()
    server.restart("SHUTDOWN", down_s=0.1)
    c = redis.Redis(port=server.port)
    try:
        return c.xinfo_groups(key)[0]
    finally:
        c.close()


async def test_idle_after_restart_despite_a_stale_redis_lag(server):
    g = await asyncio.to_thread(_restart_after_reads_past_a_rewrite, server, "tmtest:lag:md.bar")
    if not g.get("lag"):
        pytest.skip(f"this Redis reports the lag right after a restart ({g})")
    bus = RedisStreamsBus(server.url, prefix="tmtest:lag:")
    try:
        assert await bus.busy_groups(["md.bar"]) == []
        assert (await bus.group_info("md.bar"))[0]["lag"] == 0
        await bus.publish_raw("md.bar", {"i": "new"})   # real work is still seen
        busy = await bus.busy_groups(["md.bar"])
        assert len(busy) == 1 and busy[0].startswith("md.bar/g lag=")
        assert (await bus.group_info("md.bar"))[0]["lag"] >= 1
    finally:
        await bus.close()
