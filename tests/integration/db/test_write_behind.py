"""The write-behind writer on SQLite and PostgreSQL: batches queued while a round lingers are
written in order, in one transaction; the same key queued twice ends as its last row; a round
that fails is retried whole until it lands; ``prepare`` is retried with the writes until it
succeeds, then never run again; the backlog cap drops the oldest batch and counts it; a round
taken by a writer stopped before it landed is written first by ``drain``; a writer of several
tables writes a round across them in queue order, a large batch in chunks."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.db.tables import regimes, signals
from tm_common.db.writer import TablesWriter, WriteBehindWriter
from tm_common.testing.databases import migrated_engine


class Writer(WriteBehindWriter):
    service, table, key = "test", regimes, ("instrument", "bar_time_ms")


class Tables(TablesWriter):
    service, chunk_rows = "test", 3
    tables = {"regimes": (regimes, ("instrument", "bar_time_ms")),
              "signals": (signals, ("instrument", "bar_time_ms"))}


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


async def test_prepare_is_retried_with_the_writes_until_it_succeeds(db_url):
    calls, seen = [], []

    async def prepare():                  # the database is down for the first two attempts
        calls.append(1)
        if len(calls) <= 2:
            raise OSError("connection refused")
        await migrate_async(db_url)

    engine = make_engine(db_url)
    w = Writer(engine, prepare=prepare, max_backoff_s=0.05, linger_s=0.01,
               on_change=lambda: seen.append(w.status()["last_error"]))
    task = asyncio.create_task(w.run())
    try:
        w.save([row(1)])
        assert await w.flush(timeout_s=10)
        w.save([row(2)])
        assert await w.flush(timeout_s=10)
        assert await _labels(engine) == [(1, "Bull"), (2, "Bull")]
        assert len(calls) == 3, "prepared once it succeeded, never again"
        assert w.status() == {"backlog": 0, "written": 2, "failures": 2, "dropped": 0,
                              "last_error": None}
        assert seen[1:3] == ["OSError: connection refused"] * 2 and seen[-1] is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


async def test_the_backlog_cap_drops_the_oldest_batch_and_counts_it(db_url):
    async with migrated_engine(db_url) as engine:
        w = Writer(engine, max_backlog=3)
        for i in range(5):
            w.save([row(i)])
        assert w.backlog == 3 and w.dropped == 2 and w.status()["dropped"] == 2
        await w.drain()
        assert await _labels(engine) == [(2, "Bull"), (3, "Bull"), (4, "Bull")]
        assert w.backlog == 0 and w.written == 3


async def test_drain_writes_the_round_of_a_stopped_writer_first(db_url):
    async with migrated_engine(db_url) as engine:
        w = Writer(engine, linger_s=10)
        task = asyncio.create_task(w.run())
        w.save([row(1)])
        await asyncio.sleep(0.05)                # taken: the round lingers
        w.save([row(1, "Bear")])                 # queued behind it
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert w.backlog == 2
        await w.drain(timeout_s=10)
        assert await _labels(engine) == [(1, "Bear")], "the round first, then the queue"
        assert w.backlog == 0 and w.written == 2


async def test_a_tables_writer_writes_each_kind_to_its_table_in_chunks(db_url):
    async with migrated_engine(db_url) as engine:
        w = Tables(engine, linger_s=0)
        w.save_to("regimes", [row(i) for i in range(7)])        # 3 upserts of <= 3 rows
        w.save_to("signals", [{"instrument": "BTCUSDT", "bar_time_ms": 5, "direction": 1,
                               "probability": 0.6, "confidence": 0.2}])
        w.save_to("regimes", [row(2, "Bear")])                  # queued later: it wins
        with pytest.raises(KeyError, match="writes no table 'fills'"):
            w.save_to("fills", [{"exec_id": "x"}])
        await w.drain()
        assert await _labels(engine) == [(i, "Bear" if i == 2 else "Bull") for i in range(7)]
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(signals.c.bar_time_ms))).scalars().all() == [5]
        assert w.status()["written"] == 9 and w.backlog == 0
