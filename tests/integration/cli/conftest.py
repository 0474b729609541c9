"""Fixtures for supervisor/CLI tests: a fake service module and helpers to wait on it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
from tm_app.stack.supervisor import ProcessSpec
from tm_common.testing.fixtures import private_tmp_path  # noqa: F401 - replaces tmp_path here
from tm_common.testing.processes import pid_alive
from tm_common.testing.redis import free_port
from tm_common.testing.wait import wait_for as wait_until

FAKE_DIR = Path(__file__).parent / "fake_service"


def fake_env(**extra: str) -> dict[str, str]:
    """Environment that can import ``tm_fake_svc``."""
    path = os.pathsep.join(p for p in (str(FAKE_DIR), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, **extra}


def fake_spec(name: str, port: int | None = None, **extra: str) -> ProcessSpec:
    port = port or free_port()
    return ProcessSpec(name=name, argv=[sys.executable, "-m", "tm_fake_svc"], port=port,
                       env=fake_env(TM_SERVICE_NAME=name, TM_HTTP_PORT=str(port), **extra))


def get_status(port: int, timeout_s: float = 0.5) -> dict | None:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/status", timeout=timeout_s, trust_env=False)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def wait_for(predicate, timeout_s: float = 15.0, interval_s: float = 0.05, what: str = ""):
    """Poll ``predicate`` until it returns a truthy value (an exception fails at once); fail the
    test after ``timeout_s``."""
    return wait_until(predicate, timeout_s, what or str(predicate), interval_s, retry_on=())


@pytest.fixture
def fk():
    """The helpers above, as a fixture (test modules cannot import conftest in importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(spec=fake_spec, env=fake_env, status=get_status, wait=wait_for,
                           alive=pid_alive, free_port=free_port)
