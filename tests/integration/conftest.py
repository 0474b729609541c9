"""Fixtures shared by the integration folders: databases (db, trainer: a fresh PostgreSQL
database per test and a SQLite file, or both through ``db_url``), the ``wait`` poller and a
``stream_client`` on the test's namespace (service, risk).

PostgreSQL: the admin URL is ``TM_TEST_DATABASE_URL`` when it is a PostgreSQL URL, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``. Each test gets ``tm_test_<hex>``,
dropped afterwards. Skipped (with the reason) only if that server cannot be reached.
"""

from __future__ import annotations

import pytest
from tm_common.testing import databases
from tm_common.testing.stream_client import StreamClient
from tm_common.testing.wait import wait_for


@pytest.fixture(scope="session")
def pg_admin() -> str:
    url = databases.pg_admin_url()
    reason = databases.pg_unreachable(url)
    if reason:
        pytest.skip(reason)
    return url


@pytest.fixture
def pg_url(pg_admin) -> str:
    """A fresh, empty PostgreSQL database (asyncpg URL), dropped after the test."""
    with databases.fresh_pg_database(pg_admin) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return databases.sqlite_url(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Parametrised over SQLite and PostgreSQL (a fresh database each)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def wait():
    """The :func:`~tm_common.testing.wait.wait_for` poller (a sync test cannot import it from a
    conftest in importlib mode)."""
    return wait_for


@pytest.fixture
def stream_client(redis_url, namespace) -> StreamClient:
    """Publish to / read the streams of the test's namespace on the primary Redis under test."""
    return StreamClient(redis_url, namespace)
