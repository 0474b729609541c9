"""Engines from URLs: the SQLite default under data_dir, WAL + busy timeout, shared by processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from tm_common.db import make_engine, resolve_database_url
from tm_common.db.engine import async_url
from tm_common.db.migrate import migrate
from tm_common.db.tables import bars
from tm_common.errors import ConfigError
from tm_common.settings import CommonSettings


def test_default_url_is_sqlite_under_data_dir(tmp_path):
    data_dir = tmp_path / "not" / "yet"
    url = resolve_database_url(CommonSettings(data_dir=data_dir, database_url=None))
    assert url == f"sqlite+aiosqlite:///{data_dir.resolve()}/trade_matrix.db"
    assert data_dir.is_dir()


def test_configured_url_wins(tmp_path):
    s = CommonSettings(data_dir=tmp_path, database_url="postgresql+asyncpg://u@h/db")
    assert resolve_database_url(s) == "postgresql+asyncpg://u@h/db"


def test_urls_are_upgraded_to_async_drivers_and_others_refused():
    assert async_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("sqlite:////tmp/x.db").drivername == "sqlite+aiosqlite"
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        async_url("mysql://u@h/db")
    with pytest.raises(ConfigError, match="not a database URL"):
        async_url("::nonsense::")


async def test_sqlite_connections_use_wal_and_a_busy_timeout(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar()
            busy = (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar()
    finally:
        await engine.dispose()
    assert mode == "wal" and busy == 30_000
    assert Path(async_url(sqlite_url).database).parent.is_dir()  # created by make_engine


async def test_postgres_engine_connects(pg_url):
    engine = make_engine(pg_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


WRITER = textwrap.dedent("""
    import asyncio, sys
    from decimal import Decimal
    from tm_common.db import make_engine, upsert
    from tm_common.db.tables import bars

    async def main(url, worker, n):
        engine = make_engine(url)
        for i in range(n):
            row = dict(instrument=f"W{worker}", interval_min=240, open_time_ms=i,
                       close_time_ms=i, open=Decimal(i), high=Decimal(i), low=Decimal(i),
                       close=Decimal(i), volume=Decimal(worker), source="live")
            shared = {**row, "instrument": "SHARED", "open_time_ms": 0}
            async with engine.begin() as conn:
                await upsert(conn, bars, [row], ["instrument", "interval_min", "open_time_ms"])
                await upsert(conn, bars, [shared], ["instrument", "interval_min", "open_time_ms"])
        await engine.dispose()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
""")


def test_several_processes_write_one_sqlite_file(sqlite_url):
    """WAL + busy timeout: concurrent writers wait for the lock instead of failing."""
    migrate(sqlite_url)
    n, workers = 50, 3
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, sqlite_url, str(w), str(n)],
                              stderr=subprocess.PIPE, text=True) for w in range(workers)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err

    async def count():
        engine = make_engine(sqlite_url)
        try:
            async with engine.connect() as conn:
                total = (await conn.execute(sa.select(sa.func.count()).select_from(bars))).scalar()
                shared = (await conn.execute(sa.select(sa.func.count()).select_from(bars)
                                             .where(bars.c.instrument == "SHARED"))).scalar()
                return total, shared
        finally:
            await engine.dispose()

    import asyncio

    assert asyncio.run(count()) == (n * workers + 1, 1)
