"""The signal service as a real process (``python -m tm_signal``) on real Redis, with a private
SQLite database holding the model registry."""

from __future__ import annotations

import signal

import pytest
from tm_common.testing.processes import ServiceProcess, stopped_after
from tm_common.testing.redis import free_port


@pytest.fixture
def signal_service(tmp_path):
    """``signal_service(redis_url, namespace, db_url)`` → a :class:`ServiceProcess` of
    ``tm_signal``, ``/healthz`` within 90 s; all are killed (SIGKILL) after the test."""
    with stopped_after(signal.SIGKILL) as group:
        def make(redis_url: str, namespace: str, db_url: str) -> ServiceProcess:
            port = free_port()
            return group.add(ServiceProcess("tm_signal", {
                "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_DATABASE_URL": db_url,
                "TM_CONSUMER_NAME": "signal-0", "TM_DATA_DIR": str(tmp_path),
                "TM_READ_BLOCK_MS": "100", "TM_LAG_POLL_INTERVAL_S": "0.5"},
                tmp_path / f"signal-{port}.log", port=port, stop_timeout_s=25),
                healthy_within_s=90)
        yield make
