"""``python -m tm_risk`` as a real process on the Redis under test, logs captured to a file; its
lot filters from a recorded instruments-info answer (``TM_RISK_INSTRUMENTS_FILE``; reading them
from a venue over HTTP: ``test_instruments_from_the_venue.py``)."""

from __future__ import annotations

import json

import pytest
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_common.testing.processes import ServiceProcess, stopped_after
from tm_common.testing.stream_client import StreamClient

SECRET = "tm-risk-admin-7c1f9e52b0"


@pytest.fixture
def risk_process(redis_url, namespace, tmp_path):
    """``risk_process(**env)`` → a :class:`ServiceProcess` of ``tm_risk``, ``/readyz`` within
    30 s (``ready_within_s=None``: healthy only; an env value ``None`` unsets a default); all
    are stopped after the test."""
    recorded = tmp_path / "instruments-info.json"
    recorded.write_text(json.dumps({"retCode": 0, "retMsg": "OK", "result": {
        "category": "linear", "list": [s.info() for s in DEFAULT_INSTRUMENTS.values()]}}))
    with stopped_after() as group:
        def make(ready_within_s: float | None = 30, **env: str | None) -> ServiceProcess:
            return group.add(ServiceProcess("tm_risk", {
                "TM_RISK_INSTRUMENTS_FILE": str(recorded), "TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_CONSUMER_NAME": "risk-0",
                "TM_ADMIN_TOKEN": SECRET, "TM_LAG_POLL_INTERVAL_S": "0.2",
                "TM_READ_BLOCK_MS": "100", "TM_RISK_STALE_CHECK_INTERVAL_S": "0", **env},
                tmp_path / f"risk-{len(group)}.log"), ready_within_s=ready_within_s,
                healthy_within_s=30 if ready_within_s is None else None)
        yield make


@pytest.fixture
def secret() -> str:
    """The ``TM_ADMIN_TOKEN`` of every risk process started here."""
    return SECRET


@pytest.fixture
def streams(stream_client) -> StreamClient:
    """The namespace's streams (``stream_client`` of ``tests/integration/conftest.py``)."""
    return stream_client
