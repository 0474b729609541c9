"""Trainer integration fixtures: databases (fresh PostgreSQL per test, SQLite file), synthetic
random-walk history, and a small training configuration.

PostgreSQL: the admin URL is ``TM_TEST_DATABASE_URL`` when it is a PostgreSQL URL, else
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``; each test gets its own database,
dropped afterwards; skipped (with the reason) only when no server answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from dataclasses import replace

import pytest
from sqlalchemy.engine import make_url
from tm_trainer.config import BorutaConfig, TrainConfig, XgbConfig
from tm_trainer.synthetic import write_random_walk_history

DEFAULT_PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def _pg_admin_url() -> str:
    url = os.environ.get("TM_TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else DEFAULT_PG_ADMIN


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(coro):
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def pg_admin() -> str:
    url = _pg_admin_url()
    try:
        _run(_admin(url, "SELECT 1"))
    except Exception as e:  # noqa: BLE001 - unreachable server: skip with the reason
        pytest.skip(f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {e}")
    return url


@pytest.fixture
def pg_url(pg_admin) -> str:
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
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture(scope="session")
def random_walk_dir(tmp_path_factory):
    """Seeded random-walk history (BTCUSDT, ETHUSDT; 2400 bars from 2022-01-01)."""
    return write_random_walk_history(tmp_path_factory.mktemp("rw"), seed=20240611, n_bars=2400)


def _small_config(history_dir, **kw) -> TrainConfig:
    cfg = TrainConfig(history_dir=history_dir, n_windows=4, min_train_bars=600, regime_restarts=1,
                      xgb=XgbConfig(base_rounds=15, instrument_rounds=6, update_rounds=4,
                                    min_child_weight=20),
                      boruta=BorutaConfig(max_iter=6, n_iter_no_change=3, max_rows=600,
                                          reselect_every=8))
    return replace(cfg, **kw)


@pytest.fixture
def small_config():
    """Factory ``small_config(history_dir, **overrides)``: a seconds-scale configuration (4 windows,
    tiny trees, a short Boruta, one HMM restart)."""
    return _small_config
