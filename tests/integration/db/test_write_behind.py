"""The write-behind writer on SQLite and PostgreSQL: batches queued while a round lingers are
written in order, in one transaction; the same key queued twice ends as its last row; a round
that fails is retried whole until it lands."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from tm_common.db.tables import regimes
from tm_common.db.writer import WriteBehindWriter
from tm_common.testing.databases import migrated_engine


class Writer(WriteBehindWriter):
    service, table, key = "test", regimes, ("instrument", "bar_time_ms")


def row(i: int, label: str = "Bull") -> dict:
    return {"instrument": "BTCUSDT", "bar_time_ms": i, "label": label,
            "probabilities": [0.25] * 4, "volatility": 0.01, "kelly_fraction": 0.1,
            "model_version": "m"}


async def _labels(engine) -> list[tuple[int, str]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(regimes.c.bar_time_ms, regimes.c.label)
                                   .order_by(regimes.c.bar_time_ms))).all()
    return [(r[0], r[1]) for r in rows]


async def test_a_rounds_batches_land_in_one_transaction_in_order(db_url):
    async with migrated_engine(db_url) as engine:
        begins = []
        sa.event.listen(engine.sync_engine, "begin", lambda conn: begins.append(1))
        w = Writer(engine, linger_s=0.2)
        task = asyncio.create_task(w.run())
        try:
            for i in range(10):
                w.save([row(i)])
                await asyncio.sleep(0.005)            # queued while the round lingers
            w.save([row(3, "Bear")])                  # a later row of a key wins
            assert await w.flush(timeout_s=10)
            assert len(begins) == 1 and w.written == 11 and w.backlog == 0
            assert await _labels(engine) == [(i, "Bear" if i == 3 else "Bull") for i in range(10)]
        finally:
            task.cancel()


async def test_a_failed_round_is_retried_whole(db_url):
    async with migrated_engine(db_url) as engine:
        w = Writer(engine, linger_s=0.05)
        real, fails = w._write, [1]

        async def flaky(batches):
            if fails:
                fails.pop()
                raise OSError("database went away")
            await real(batches)
        w._write = flaky                                  # type: ignore[method-assign]
        task = asyncio.create_task(w.run())
        try:
            w.save([row(1)])
            w.save([row(2)])
            assert await w.flush(timeout_s=10)
            assert await _labels(engine) == [(1, "Bull"), (2, "Bull")]
            assert w.failures == 1 and w.written == 2
        finally:
            task.cancel()
