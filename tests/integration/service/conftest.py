"""Real processes for the service-base tests: the example service under uvicorn and a private
``redis-server`` that a test may kill and restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.redis import free_port

HERE = Path(__file__).parent
SECRET = "tm-test-secret-9f2c41e7"     # TM_ADMIN_TOKEN of every service under test


def wait_for(pred: Callable[[], object], timeout_s: float = 10.0, what: str = "condition",
             interval_s: float = 0.05):
    """Poll ``pred`` until it returns a truthy value; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (httpx.HTTPError, OSError) as e:
            last_exc = e
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last error: {last_exc})")


class ServiceProcess:
    """The example service (or a script) as a child process, logs to a file."""

    def __init__(self, redis_url: str, namespace: str, log_path: Path, *,
                 argv: list[str] | None = None, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.argv = argv or [sys.executable, "-m", "tm_common.service.example"]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
        self.env.update({
            "TM_SERVICE_NAME": "echo", "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace,
            "TM_HTTP_PORT": str(self.port), "TM_CONSUMER_NAME": "echo-0",
            "TM_ADMIN_TOKEN": SECRET, "TM_LAG_POLL_INTERVAL_S": "0.2",
            "TM_READ_BLOCK_MS": "200", "PYTHONUNBUFFERED": "1",
        })
        self.env.update(env)
        self.proc: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> ServiceProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        wait_for(lambda: self.alive_or_raise() and self.get("/healthz").status_code == 200,
                 15, "service /healthz")
        if wait_ready:
            wait_for(lambda: self.get("/readyz").status_code == 200, 15, "service /readyz")
        return self

    def alive_or_raise(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"service exited ({self.proc and self.proc.returncode}):\n"
                                 + self.logs()[-3000:])
        return True

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5.0, follow_redirects=False)

    def status(self) -> dict:
        return self.get("/status").json()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def service_factory(tmp_path):
    """``service_factory(redis_url, namespace, **env)`` → a started :class:`ServiceProcess`;
    every one is stopped after the test."""
    started: list[ServiceProcess] = []

    def make(redis_url: str, namespace: str, *, start: bool = True, wait_ready: bool = True,
             **kw) -> ServiceProcess:
        sp = ServiceProcess(redis_url, namespace, tmp_path / f"service-{len(started)}.log", **kw)
        started.append(sp)
        return sp.start(wait_ready) if start else sp

    yield make
    for sp in started:
        sp.stop()


class RedisServer:
    """A private Redis 7 (``redis-server`` from PATH) without persistence, on a fixed port so
    that it can be killed and restarted where clients expect it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._pings, 10, f"redis-server on {self.port}")

    def _pings(self) -> bool:
        import redis

        r = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(r.ping())
        except redis.exceptions.ConnectionError:
            return False
        finally:
            r.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


class StreamClient:
    """Publish to and read streams of one namespace from a sync test (own event loop per call)."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.namespace = url, namespace

    def call(self, fn):
        async def run():
            bus = RedisStreamsBus(self.url, prefix=self.namespace)
            try:
                return await fn(bus)
            finally:
                await bus.close()
        return asyncio.run(run())

    def publish(self, stream: str, envelopes) -> list[str]:
        async def go(bus):
            return [await bus.publish(stream, e) for e in envelopes]
        return self.call(go)

    def entries(self, stream: str) -> list[tuple[str, dict[str, str]]]:
        return self.call(lambda bus: bus.entries(stream, count=100_000))

    def group(self, stream: str, group: str = "echo") -> dict | None:
        async def go(bus):
            return next((g for g in await bus.group_info(stream) if g["name"] == group), None)
        return self.call(go)


@pytest.fixture
def wait():
    """The :func:`wait_for` poller."""
    return wait_for


@pytest.fixture
def stream_client(redis_url, namespace) -> StreamClient:
    """Streams of the test's namespace on the primary Redis under test."""
    return StreamClient(redis_url, namespace)


@pytest.fixture
def stream_client_for():
    """``stream_client_for(url, namespace)`` → a :class:`StreamClient` on any Redis."""
    return StreamClient
