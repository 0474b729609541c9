"""Ingest's bar writer through a PostgreSQL outage (what the fault drill found): the batch being
retried counts in the backlog (``/status`` said 0 while a batch was still failing), and a
shutdown lets the writer land what is queued instead of cancelling it. A private cluster
(``initdb``), stopped and started for real."""

from __future__ import annotations

import asyncio
import shutil

import pytest
import sqlalchemy as sa
from tm_app.faults_infra import PrivatePostgres
from tm_common.db import make_engine
from tm_common.db.migrate import migrate
from tm_common.testing.factories import bar
from tm_common.testing.redis import free_port
from tm_ingest.config import IngestSettings
from tm_ingest.repository import MarketRepository
from tm_ingest.service import IngestService

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def pg():
    if shutil.which("psql") is None:
        pytest.fail("psql is not on PATH")
    server = PrivatePostgres(free_port())
    server.init()
    server.start()
    yield server
    server.close()


async def _count(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text("SELECT count(*) FROM bars"))).scalar_one()
    finally:
        await engine.dispose()


async def _until(pred, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_batch_retried_through_an_outage_counts_in_the_backlog(pg):
    url = pg.create_db("ingest_outage")
    await asyncio.to_thread(migrate, url)
    repo = MarketRepository(make_engine(url), max_backoff_s=0.2)
    writer = asyncio.create_task(repo.run())
    try:
        await asyncio.to_thread(pg.stop, "fast")
        repo.save_bars([bar("BTCUSDT", 0), bar("BTCUSDT", 1)])
        await _until(lambda: repo.failures >= 2, 30)
        assert repo.backlog == 1                  # taken off the queue, not written
        assert not await repo.flush(timeout_s=0.3)
        await asyncio.to_thread(pg.start)
        assert await repo.flush(timeout_s=30)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await repo.engine.dispose()
    assert repo.backlog == 0 and repo.written == 2
    assert await _count(url) == 2


async def test_shutdown_lands_the_queued_bars(pg, redis_url, namespace):
    from tm_common.bus.redis import RedisStreamsBus

    url = pg.create_db("ingest_shutdown")
    await asyncio.to_thread(migrate, url)
    settings = IngestSettings(mode="off", database_url=url, namespace=namespace)
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    repo = MarketRepository(make_engine(url))
    svc = IngestService(settings, bus, repo=repo)
    stop = asyncio.Event()
    writer = asyncio.create_task(svc.background()["db-writer"](stop))
    repo.save_bars([bar("BTCUSDT", i) for i in range(5)])
    stop.set()                                    # at once: before the writer got to them
    await asyncio.wait_for(writer, 30)
    await repo.engine.dispose()
    await bus.close()
    assert repo.backlog == 0 and repo.written == 5
    assert await _count(url) == 5
