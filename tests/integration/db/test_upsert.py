"""Idempotent writes on both dialects: upsert, DO NOTHING, mark_processed, exact decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from tm_common.db import mark_processed, session_factory, upsert
from tm_common.db.tables import bars, fills, orders, portfolio_snapshots, processed_events
from tm_common.testing.databases import migrated_engine

BAR_KEY = ["instrument", "interval_min", "open_time_ms"]
TINY = Decimal("0.000000000000000000123456789")   # beyond float precision
BIG = Decimal("123456789012345678.123456789012345678")


def bar(open_time_ms: int = 1_700_000_000_000, close: str = "100.5", **kw) -> dict:
    row = dict(instrument="BTCUSDT", interval_min=240, open_time_ms=open_time_ms,
               close_time_ms=open_time_ms + 14_400_000 - 1, open=Decimal("100.1"),
               high=Decimal("101"), low=Decimal("99.9"), close=Decimal(close),
               volume=Decimal("12.345"), source="live")
    row.update(kw)
    return row


@pytest.fixture
async def engine(db_url):
    async with migrated_engine(db_url) as e:
        yield e


async def _all(engine, table, order_by=None):
    async with engine.connect() as conn:
        stmt = sa.select(table)
        if order_by is not None:
            stmt = stmt.order_by(order_by)
        return [dict(r._mapping) for r in await conn.execute(stmt)]


async def test_same_key_twice_gives_one_row_with_the_new_values(engine):
    async with engine.begin() as conn:
        assert await upsert(conn, bars, [bar()], BAR_KEY) == 1
    async with engine.begin() as conn:
        await upsert(conn, bars, [bar(close="105.25", source="backfill")], BAR_KEY)
    rows = await _all(engine, bars)
    assert len(rows) == 1
    assert rows[0]["close"] == Decimal("105.25") and rows[0]["source"] == "backfill"
    assert rows[0]["open"] == Decimal("100.1")


async def test_replaying_a_batch_is_a_no_op(engine):
    batch = [bar(open_time_ms=t) for t in range(0, 10 * 14_400_000, 14_400_000)]
    for _ in range(3):
        async with engine.begin() as conn:
            await upsert(conn, bars, batch, BAR_KEY)
    rows = await _all(engine, bars, bars.c.open_time_ms)
    assert [r["open_time_ms"] for r in rows] == [b["open_time_ms"] for b in batch]


async def test_duplicate_keys_in_one_batch_last_wins(engine):
    # PostgreSQL refuses ON CONFLICT touching one row twice in a statement; upsert dedupes.
    async with engine.begin() as conn:
        n = await upsert(conn, bars, [bar(close="1"), bar(close="2"), bar(close="3")], BAR_KEY)
    assert n == 1
    assert [r["close"] for r in await _all(engine, bars)] == [Decimal("3")]


async def test_exact_decimals_round_trip(engine):
    async with engine.begin() as conn:
        await upsert(conn, bars, [bar(open=TINY, high=BIG, close="0.1", low="0.2")], BAR_KEY)
    (row,) = await _all(engine, bars)
    assert row["open"] == TINY and row["high"] == BIG
    assert row["close"] + row["low"] == Decimal("0.3")  # exact, unlike 0.1 + 0.2 in float


async def test_float_money_is_refused(engine):
    with pytest.raises(sa.exc.StatementError, match="refuses float"):
        async with engine.begin() as conn:
            await upsert(conn, bars, [bar(high=100.5)], BAR_KEY)


async def test_update_cols_empty_means_first_writer_wins(engine):
    async with session_factory(engine)() as session:
        await upsert(session, bars, [bar(close="1")], BAR_KEY, update_cols=())
        await upsert(session, bars, [bar(close="2")], BAR_KEY, update_cols=())
        await session.commit()
    assert [r["close"] for r in await _all(engine, bars)] == [Decimal("1")]


async def test_orders_keyed_by_intent_and_unique_link_id(engine):
    order = dict(intent_id="i-1", order_link_id="tm-abc", instrument="ETHUSDT",
                 bar_time_ms=1, side="Buy", qty=Decimal("0.01"), status="approved")
    async with engine.begin() as conn:
        await upsert(conn, orders, [order], ["intent_id"])
        await upsert(conn, orders, [{**order, "status": "Filled", "order_id": "X1"}],
                     ["intent_id"])
    (row,) = await _all(engine, orders)
    assert (row["status"], row["order_id"], row["qty"]) == ("Filled", "X1", Decimal("0.01"))
    with pytest.raises(sa.exc.IntegrityError):  # another intent may not reuse the link id
        async with engine.begin() as conn:
            await upsert(conn, orders, [{**order, "intent_id": "i-2"}], ["intent_id"])


async def test_fills_and_snapshot_json_with_decimals(engine):
    fill = dict(exec_id="e1", intent_id="i-1", order_link_id="tm-abc", order_id="X1",
                instrument="ETHUSDT", side="Buy", qty=Decimal("0.01"), price=Decimal("3000.5"),
                fee=Decimal("0.0165"), exec_time_ms=5)
    snap = dict(bar_time_ms=1, equity=Decimal("10000.01"), cash=Decimal("9000"),
                realised_pnl=Decimal("0"), unrealised_pnl=Decimal("1.01"), fees=Decimal("0.0165"),
                funding=Decimal("0"), peak_equity=Decimal("10000.01"), drawdown=0.0,
                positions=[{"instrument": "ETHUSDT", "qty": Decimal("0.01")}])
    async with engine.begin() as conn:
        for _ in range(2):
            await upsert(conn, fills, [fill], ["exec_id"])
            await upsert(conn, portfolio_snapshots, [snap], ["bar_time_ms"])
    assert len(await _all(engine, fills)) == 1
    (s,) = await _all(engine, portfolio_snapshots)
    assert s["positions"] == [{"instrument": "ETHUSDT", "qty": "0.01"}]  # decimals as strings
    assert s["equity"] == Decimal("10000.01")


async def test_mark_processed_once_per_consumer(engine):
    async with engine.begin() as conn:
        assert await mark_processed(conn, "portfolio", "ev-1", "order.filled", now_ms=1)
        assert not await mark_processed(conn, "portfolio", "ev-1", "order.filled", now_ms=2)
        assert await mark_processed(conn, "risk", "ev-1", "order.filled", now_ms=3)
    rows = await _all(engine, processed_events)
    assert {(r["consumer"], r["processed_at_ms"]) for r in rows} == {("portfolio", 1), ("risk", 3)}


async def test_mark_processed_rolls_back_with_the_effect(engine):
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            assert await mark_processed(conn, "portfolio", "ev-9")
            raise RuntimeError("effect failed")
    async with engine.begin() as conn:  # not recorded: the redelivery will apply it
        assert await mark_processed(conn, "portfolio", "ev-9")


async def test_bad_rows_are_clear_errors(engine):
    async with engine.begin() as conn:
        with pytest.raises(ValueError, match="lacks key column 'open_time_ms'"):
            await upsert(conn, bars, [{"instrument": "X", "interval_min": 1}], BAR_KEY)
        with pytest.raises(ValueError, match="no column"):
            await upsert(conn, bars, [bar(nonsense=1)], BAR_KEY)
        assert await upsert(conn, bars, [], BAR_KEY) == 0
