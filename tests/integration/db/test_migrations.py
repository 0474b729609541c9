"""Migrations on both dialects: upgrade to head, agree with tables.py, idempotent, concurrent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from tm_common.db.engine import make_engine
from tm_common.db.migrate import downgrade, head_revision, migrate, migrate_async
from tm_common.db.tables import ALL_TABLES, metadata


async def _inspect(url: str) -> dict:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            def read(sync_conn):
                insp = sa.inspect(sync_conn)
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return {"tables": set(insp.get_table_names()),
                        "version": ctx.get_current_revision(),
                        "diff": compare_metadata(ctx, metadata)}
            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def test_upgrade_to_head_creates_every_table_as_declared(db_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    migrate(db_url)
    assert not list(tmp_path.glob("*.migrate.lock"))  # no stray lock file for PostgreSQL
    info = asyncio.run(_inspect(db_url))
    assert info["version"] == head_revision() == "0005_snapshot_transfers"
    assert {t.name for t in ALL_TABLES} <= info["tables"]
    # The hand-written migration and tables.py must describe the same schema.
    assert info["diff"] == [], info["diff"]


def test_upgrade_is_idempotent_and_downgrade_reverses_it(db_url):
    migrate(db_url)
    migrate(db_url)  # already at head: a no-op, not an error
    downgrade(db_url, "base")
    info = asyncio.run(_inspect(db_url))
    assert info["version"] is None
    assert not ({t.name for t in ALL_TABLES} & info["tables"])
    migrate(db_url)
    assert asyncio.run(_inspect(db_url))["version"] == head_revision()


async def test_migrate_from_inside_a_running_event_loop(db_url):
    # env.py calls asyncio.run(); migrate() must still work while this loop runs.
    migrate(db_url)
    await migrate_async(db_url)
    assert (await _inspect(db_url))["version"] == head_revision()


def test_concurrent_migrators_in_one_process_all_succeed(db_url):
    """Alembic's state is global: threads migrating at once must be serialised, not mixed."""
    errors: list[BaseException] = []

    def worker():
        try:
            migrate(db_url)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "migrate() deadlocked"
    assert errors == []
    assert asyncio.run(_inspect(db_url))["version"] == head_revision()


def test_concurrent_migrator_processes_all_succeed(db_url):
    """Services starting together each migrate: the database/file lock serialises them."""
    code = "import sys; from tm_common.db.migrate import migrate; migrate(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert asyncio.run(_inspect(db_url))["version"] == head_revision()


def test_timescaledb_is_used_only_when_available(pg_url):
    migrate(pg_url)

    async def check():
        engine = make_engine(pg_url)
        try:
            async with engine.connect() as conn:
                available = (await conn.execute(sa.text(
                    "SELECT 1 FROM pg_available_extensions WHERE name='timescaledb'"))).first()
                installed = (await conn.execute(sa.text(
                    "SELECT 1 FROM pg_extension WHERE extname='timescaledb'"))).first()
                hyper = None
                if installed:
                    hyper = (await conn.execute(sa.text(
                        "SELECT 1 FROM timescaledb_information.hypertables "
                        "WHERE hypertable_name='bars'"))).first()
                return available, installed, hyper
        finally:
            await engine.dispose()

    available, installed, hyper = asyncio.run(check())
    if not available:
        assert installed is None  # guarded path: nothing attempted, nothing failed
    elif installed:
        assert hyper is not None
    else:
        pytest.skip("timescaledb is available but not loadable (shared_preload_libraries)")


def test_a_snapshot_without_its_bar_time_is_refused_not_numbered(pg_url):
    """0001 created ``portfolio_snapshots.bar_time_ms`` as BIGSERIAL on PostgreSQL; 0004 drops
    the sequence default, so a row without its key is refused; a downgrade to 0003 puts it back."""

    async def key_column() -> tuple[str | None, bool]:
        engine = make_engine(pg_url)
        try:
            async with engine.connect() as conn:
                default = (await conn.execute(sa.text(
                    "SELECT column_default FROM information_schema.columns WHERE "
                    "table_name='portfolio_snapshots' AND column_name='bar_time_ms'"))).scalar()
                seq = (await conn.execute(sa.text(
                    "SELECT to_regclass('portfolio_snapshots_bar_time_ms_seq')"))).scalar()
                return default, seq is not None
        finally:
            await engine.dispose()

    async def insert_without_key() -> None:
        engine = make_engine(pg_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text(
                    "INSERT INTO portfolio_snapshots (equity, cash, realised_pnl, unrealised_pnl, "
                    "fees, funding, peak_equity, drawdown, positions) "
                    "VALUES (1, 1, 0, 0, 0, 0, 1, 0, '[]')"))
        finally:
            await engine.dispose()

    downgrade(pg_url, "base")
    migrate(pg_url)
    assert asyncio.run(key_column()) == (None, False)
    with pytest.raises(sa.exc.IntegrityError, match="bar_time_ms"):
        asyncio.run(insert_without_key())
    downgrade(pg_url, "0003_audit")
    default, has_seq = asyncio.run(key_column())
    assert has_seq and default == "nextval('portfolio_snapshots_bar_time_ms_seq'::regclass)"
    migrate(pg_url)
    assert asyncio.run(key_column()) == (None, False)
