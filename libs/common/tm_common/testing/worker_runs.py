"""Driving :mod:`tm_common.testing.bus_worker` processes on real Redis (the delivery and commit
batching tests): start or run a worker, publish bar events to its input, read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tm_common.bus.redis import RedisStreamsBus
from tm_common.events import BarClosed
from tm_common.testing.factories import bar_event


def start_worker(url: str, ns: str, **env: Any) -> subprocess.Popen[str]:
    e = {**os.environ, "W_URL": url, "W_PREFIX": ns, **{k: str(v) for k, v in env.items()}}
    return subprocess.Popen([sys.executable, "-m", "tm_common.testing.bus_worker"], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_worker(url: str, ns: str, timeout: float = 60, **env: Any) -> tuple[int, str, str]:
    """Run a worker until it has been idle a second; (exit status, stdout, stderr)."""
    p = start_worker(url, ns, W_IDLE_EXIT=1, **env)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


async def publish(url: str, ns: str, n: int, start: int = 0) -> None:
    """Bars ``start .. start + n - 1`` of BTCUSDT on the worker's input stream ``in``."""
    bus = RedisStreamsBus(url, prefix=ns)
    for i in range(start, start + n):
        await bus.publish("in", bar_event("BTCUSDT", i))
    await bus.close()


async def outputs(url: str, ns: str) -> list[dict[str, Any]]:
    """The bodies the workers wrote to ``test.out``, in stream order."""
    bus = RedisStreamsBus(url, prefix=ns)
    try:
        return [json.loads(f["body"]) for _, f in await bus.entries("test.out", 100_000)]
    finally:
        await bus.close()


async def group(url: str, ns: str) -> dict[str, Any]:
    """The worker group's info on ``in`` (lag, pending, ...)."""
    bus = RedisStreamsBus(url, prefix=ns)
    try:
        info: dict[str, Any] = (await bus.group_info("in"))[0]
        return info
    finally:
        await bus.close()


def t(i: int) -> int:
    """The open time of bar ``i``."""
    body = bar_event("BTCUSDT", i).body
    assert isinstance(body, BarClosed)
    return body.open_time_ms


def assert_exactly_once(outs: list[dict[str, Any]], n: int) -> None:
    """Bars 0..n-1 each handled once, counted 1..n in order."""
    assert [o["confidence"] for o in outs] == [float(i) for i in range(1, n + 1)]
    assert sorted(o["bar_time_ms"] for o in outs) == [t(i) for i in range(n)]
