"""Real processes for the service-base tests: the example service under uvicorn and a private
``redis-server`` that a test may kill and restart."""

from __future__ import annotations

import pytest
from tm_common.testing.processes import ServiceProcess, stopped_after
from tm_common.testing.redis import RedisServer
from tm_common.testing.stream_client import StreamClient

SECRET = "tm-test-secret-9f2c41e7-a35d"     # TM_ADMIN_TOKEN of every service under test


@pytest.fixture
def service_factory(tmp_path):
    """``service_factory(redis_url, namespace, *, argv=None, start=True, wait_ready=True, **env)``
    → the example service (or ``argv``) as a :class:`ServiceProcess`, started (``/healthz``, and
    ``/readyz`` unless ``wait_ready`` is false, within 15 s each); every one is stopped after the
    test."""
    with stopped_after() as group:
        def make(redis_url: str, namespace: str, *, start: bool = True, wait_ready: bool = True,
                 argv: list[str] | None = None, **env: str) -> ServiceProcess:
            return group.add(ServiceProcess(argv or "tm_common.service.example", {
                "TM_SERVICE_NAME": "echo", "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace,
                "TM_CONSUMER_NAME": "echo-0", "TM_ADMIN_TOKEN": SECRET,
                "TM_LAG_POLL_INTERVAL_S": "0.2", "TM_READ_BLOCK_MS": "200", **env},
                tmp_path / f"service-{len(group)}.log"), start=start, healthy_within_s=15,
                ready_within_s=15 if wait_ready else None)
        yield make


@pytest.fixture
def private_redis(tmp_path):
    """A private Redis 7 on a fixed port: ``kill()`` it and ``start()`` it again, empty."""
    server = RedisServer(tmp_path).start(timeout_s=10)
    yield server
    server.stop()


@pytest.fixture
def stream_client_for():
    """``stream_client_for(url, namespace)`` → a :class:`StreamClient` on any Redis."""
    return StreamClient
