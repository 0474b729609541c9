"""Databases shared by the integration folders (db, trainer): a fresh PostgreSQL database per
test and a SQLite file, or both through ``db_url``.

PostgreSQL: the admin URL is ``TM_TEST_DATABASE_URL`` when it is a PostgreSQL URL, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``. Each test gets ``tm_test_<hex>``,
dropped afterwards. Skipped (with the reason) only if that server cannot be reached.
"""

from __future__ import annotations

import pytest
from tm_common.testing import databases


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
