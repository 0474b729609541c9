"""``python -m tm_risk`` as a real process on the Redis under test, logs captured to a file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.redis import free_port

SECRET = "tm-risk-admin-7c1f9e52b0"


def wait_for(pred, timeout_s: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (httpx.HTTPError, OSError) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last error: {last})")


class RiskProcess:
    def __init__(self, redis_url: str, namespace: str, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
        self.env.update({
            "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_HTTP_PORT": str(self.port),
            "TM_CONSUMER_NAME": "risk-0", "TM_ADMIN_TOKEN": SECRET, "TM_LAG_POLL_INTERVAL_S": "0.2",
            "TM_READ_BLOCK_MS": "100", "TM_RISK_STALE_CHECK_INTERVAL_S": "0", "PYTHONUNBUFFERED": "1"})
        self.env.update(env)
        self.env = {k: v for k, v in self.env.items() if v is not None}
        self.proc: subprocess.Popen | None = None

    def start(self) -> RiskProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tm_risk"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._alive() and httpx.get(self.base + "/readyz", timeout=2).status_code == 200,
                 30, "risk /readyz")
        return self

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"risk exited: {self.logs()[-3000:]}")
        return True

    def post(self, path: str, token: str | None = None, header: str | None = None, **kw):
        headers = {}
        if header is not None:
            headers["Authorization"] = header
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.base + path, headers=headers, timeout=5, **kw)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return None if self.proc is None else self.proc.returncode


@pytest.fixture
def risk_process(redis_url, namespace, tmp_path):
    """``risk_process(**env)`` → a started :class:`RiskProcess`; all are stopped after the test."""
    started: list[RiskProcess] = []

    def make(**env: str) -> RiskProcess:
        p = RiskProcess(redis_url, namespace, tmp_path / f"risk-{len(started)}.log", **env)
        started.append(p)
        return p.start()

    yield make
    for p in started:
        p.stop()


class Streams:
    """Publish to / read the namespace's streams from a sync test."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.namespace = url, namespace

    def _call(self, fn):
        async def run():
            bus = RedisStreamsBus(self.url, prefix=self.namespace)
            try:
                return await fn(bus)
            finally:
                await bus.close()
        return asyncio.run(run())

    def publish(self, stream: str, envs) -> None:
        async def go(bus):
            for e in envs:
                await bus.publish(stream, e)
        self._call(go)

    def bodies(self, stream: str) -> list:
        from tm_common.events import Envelope

        async def go(bus):
            return [Envelope.from_fields(f).body for _, f in await bus.entries(stream, 100_000)]
        return self._call(go)


@pytest.fixture
def secret() -> str:
    """The ``TM_ADMIN_TOKEN`` of every risk process started here."""
    return SECRET


@pytest.fixture
def wait():
    return wait_for


@pytest.fixture
def streams(redis_url, namespace) -> Streams:
    return Streams(redis_url, namespace)
