"""The bus on real Redis with real worker processes (:mod:`tm_common.testing.worker_runs`): a
scenario shared by this folder's tests (import it with ``from .conftest import ...``); and
``bus_ns``, one bus on each transport."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from tm_common.bus import InMemoryBus
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.redis import delete_namespace
from tm_common.testing.worker_runs import (
    assert_exactly_once,
    outputs,
    publish,
    run_worker,
    start_worker,
)


async def check_sigterm_under_load(url: str, ns: str, n: int, **env: Any) -> None:
    """A worker (``env``, a 2 ms handling) gets SIGTERM once it has written 20 outputs while
    ``n`` inputs are still being published: it exits 0 having handled some but not all of
    them; a second worker (same ``env``) handles the rest, every input exactly once."""
    p = start_worker(url, ns, W_SLEEP_S=0.002, **env)
    assert p.stdout.readline().strip() == "ready"
    pub = asyncio.create_task(publish(url, ns, n))
    deadline = time.time() + 20
    while len(await outputs(url, ns)) < 20 and time.time() < deadline:
        await asyncio.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    await pub
    first = len(await outputs(url, ns))
    assert 0 < first < n
    rc, _, err = run_worker(url, ns, **env)
    assert rc == 0, err
    assert_exactly_once(await outputs(url, ns), n)


__all__ = ["check_sigterm_under_load"]


@pytest.fixture(params=["memory", "redis7", "redis62"])
async def bus_ns(request, namespace):
    """(bus, namespace) on each transport: the in-memory bus, Redis 7 and the embedded Redis 6.2
    (mark the test ``redis62``); the Redis keys live under the test's namespace."""
    if request.param == "memory":
        yield InMemoryBus(), namespace
        return
    url = request.getfixturevalue("redis_url" if request.param == "redis7" else "redis62_url")
    bus = RedisStreamsBus(url, prefix=namespace)
    yield bus, namespace
    await bus.close()
    delete_namespace(url, namespace)
