"""Databases for the db tests: a fresh PostgreSQL database per test and a SQLite file.

PostgreSQL: the admin URL is ``TM_TEST_DATABASE_URL`` when it is a PostgreSQL URL, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``. Each test gets ``tm_test_<uuid>``,
created through asyncpg on the admin database and dropped afterwards. Skipped (with the reason)
only if that server cannot be reached.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlalchemy.engine import make_url

DEFAULT_PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def pg_admin_url() -> str:
    url = os.environ.get("TM_TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else DEFAULT_PG_ADMIN


def _dsn(url: str) -> str:
    """A plain ``postgresql://`` DSN for asyncpg from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(url), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(coro):
    # Runs in a fresh loop even when a test's own loop is running (fixtures are sync).
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def pg_admin() -> str:
    url = pg_admin_url()
    try:
        _run(_admin(url, "SELECT 1"))
    except Exception as e:  # noqa: BLE001 - any connection failure means "not available here"
        pytest.skip(f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {e}")
    return url


@pytest.fixture
def pg_url(pg_admin) -> str:
    """A fresh, empty PostgreSQL database (asyncpg URL), dropped after the test."""
    name = f"tm_test_{uuid.uuid4().hex[:16]}"
    _run(_admin(pg_admin, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_admin).set(drivername="postgresql+asyncpg", database=name) \
            .render_as_string(hide_password=False)
    finally:
        _run(_admin(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'trade_matrix.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Parametrised over SQLite and PostgreSQL (a fresh database each)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def tmp_path():
    """A private temp dir instead of pytest's: concurrent pytest sessions of the same user prune
    each other's ``/tmp/pytest-of-<user>`` trees, and a data dir deleted under a detached
    server would leak that server (its record file gone)."""
    import shutil
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp(prefix="tm-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
