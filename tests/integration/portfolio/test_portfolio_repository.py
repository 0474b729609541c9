"""The portfolio's write-behind repository: idempotent upserts keyed by exec_id / bar_time_ms,
rows kept and retried while the database is unavailable, a bounded backlog."""

import asyncio
import uuid
from decimal import Decimal

import sqlalchemy as sa
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.db.tables import fills as fills_table
from tm_common.db.tables import portfolio_snapshots as snaps_table
from tm_common.events import PortfolioSnapshotted, PositionView
from tm_portfolio.repository import PortfolioRepository
from tm_portfolio.testing import make_fill


def snapshot(bar_ms: int, equity: str) -> PortfolioSnapshotted:
    pv = PositionView(instrument="BTCUSDT", qty=Decimal("0.001"), avg_price=Decimal("30000.1"),
                      mark_price=Decimal(30100), unrealised_pnl=Decimal("0.0999"))
    return PortfolioSnapshotted(bar_time_ms=bar_ms, equity=Decimal(equity), cash=Decimal(equity),
                                realised_pnl=Decimal(0), unrealised_pnl=Decimal("0.0999"),
                                fees=Decimal("0.0165"), funding=Decimal(0),
                                peak_equity=Decimal(equity), drawdown=0.0, positions=(pv,))


async def test_rows_survive_a_database_outage_and_upserts_are_idempotent(database_url):
    attempts = {"n": 0}

    async def prepare():          # the database is down for the first two attempts
        attempts["n"] += 1
        if attempts["n"] <= 2:
            raise OSError("connection refused")
        await migrate_async(database_url)

    engine = make_engine(database_url)
    repo = PortfolioRepository(engine, prepare=prepare, max_backoff_s=0.05)
    tag = uuid.uuid4().hex[:10]
    bar_ms = 3_000_000_000_000 + uuid.uuid4().int % 1_000_000 * 1000
    f = make_fill(f"{tag}-1", "BTCUSDT", "Buy", "0.001", "30000.1", "0.0165005500")
    repo.save_fill(f, "ev-1")
    repo.save_snapshot(snapshot(bar_ms, "100000.0834"), "ev-s1")
    repo.save_fill(f, "ev-1")                                     # redelivered: same key
    repo.save_snapshot(snapshot(bar_ms, "100000.0835"), "ev-s2")  # same bar time: updated
    writer = asyncio.create_task(repo.run())
    try:
        for _ in range(200):
            if repo.backlog == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    assert repo.backlog == 0 and repo.failures == 2 and repo.written == 4
    assert repo.status()["last_error"] is None
    async with engine.begin() as conn:
        fills = (await conn.execute(sa.select(fills_table.c.exec_id, fills_table.c.fee,
                                              fills_table.c.event_id)
                                    .where(fills_table.c.exec_id == f.exec_id))).all()
        snaps = (await conn.execute(sa.select(snaps_table.c.equity, snaps_table.c.positions,
                                              snaps_table.c.event_id)
                                    .where(snaps_table.c.bar_time_ms == bar_ms))).all()
        await conn.execute(fills_table.delete().where(fills_table.c.exec_id == f.exec_id))
        await conn.execute(snaps_table.delete().where(snaps_table.c.bar_time_ms == bar_ms))
    await engine.dispose()
    assert fills == [(f.exec_id, Decimal("0.0165005500"), "ev-1")]
    assert len(snaps) == 1 and snaps[0][0] == Decimal("100000.0835") and snaps[0][2] == "ev-s2"
    assert snaps[0][1] == [{"instrument": "BTCUSDT", "qty": "0.001", "avg_price": "30000.1",
                            "mark_price": "30100", "unrealised_pnl": "0.0999"}]


async def test_backlog_is_bounded_and_drops_the_oldest(database_url):
    await migrate_async(database_url)
    engine = make_engine(database_url)
    repo = PortfolioRepository(engine, max_backlog=3)
    tag = uuid.uuid4().hex[:10]
    for i in range(5):
        repo.save_fill(make_fill(f"{tag}-x{i}", "BTCUSDT", "Buy", "1", "1"), f"e{i}")
    assert repo.backlog == 3 and repo.dropped == 2
    await repo.drain()
    async with engine.begin() as conn:
        ids = (await conn.execute(sa.select(fills_table.c.exec_id)
                                  .where(fills_table.c.exec_id.like(f"{tag}-%"))
                                  .order_by(fills_table.c.exec_id))).scalars().all()
        await conn.execute(fills_table.delete().where(fills_table.c.exec_id.like(f"{tag}-%")))
    await engine.dispose()
    assert ids == [f"{tag}-x2", f"{tag}-x3", f"{tag}-x4"]
    assert repo.status()["dropped"] == 2 and repo.written == 3
