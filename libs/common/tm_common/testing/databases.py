"""Databases for tests: a fresh PostgreSQL database (created and dropped through asyncpg on an
admin database) and a SQLite file URL.

The admin URL is ``TM_TEST_DATABASE_URL`` when it is a PostgreSQL URL, else
:data:`DEFAULT_PG_ADMIN`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async

T = TypeVar("T")
DEFAULT_PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@asynccontextmanager
async def migrated_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """``async with migrated_engine(url) as engine``: the schema migrated to head on ``url``
    (SQLite or PostgreSQL), an engine on it, disposed when the block ends."""
    await migrate_async(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


def pg_admin_url() -> str:
    url = os.environ.get("TM_TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else DEFAULT_PG_ADMIN


def asyncpg_dsn(url: str) -> str:
    """A plain ``postgresql://`` DSN for asyncpg from a SQLAlchemy URL (password kept)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion in a fresh loop on a worker thread: works from sync fixtures
    even while a test's own loop is running."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


async def _execute(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_execute(url: str, sql: str) -> None:
    """Run one statement on ``url`` (5 s connect timeout)."""
    run_sync(_execute(url, sql))


def pg_unreachable(admin_url: str) -> str | None:
    """``None`` when ``admin_url`` answers ``SELECT 1``, else why not (for a skip reason)."""
    try:
        pg_execute(admin_url, "SELECT 1")
    except Exception as e:  # noqa: BLE001 - any connection failure means "not available here"
        return f"PostgreSQL not reachable at {make_url(admin_url).render_as_string()}: {e}"
    return None


@contextmanager
def fresh_pg_database(admin_url: str) -> Iterator[str]:
    """A new, empty database ``tm_test_<hex>`` on ``admin_url``'s server; yields its asyncpg URL
    and drops it (``WITH (FORCE)``) afterwards."""
    name = f"tm_test_{uuid.uuid4().hex[:16]}"
    pg_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(drivername="postgresql+asyncpg", database=name) \
            .render_as_string(hide_password=False)
    finally:
        pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(directory: Path) -> str:
    """The aiosqlite URL of ``<directory>/db/trade_matrix.db``."""
    return f"sqlite+aiosqlite:///{Path(directory) / 'db' / 'trade_matrix.db'}"
