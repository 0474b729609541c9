"""The signal warm-up's funding history: the shipped file, overridden and extended by the
``funding`` table (what ingest's poller, backfill and replay write), on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.db.tables import funding
from tm_common.history import load_funding
from tm_signal.repository import BarHistory


async def test_funding_from_files_then_the_table_wins_and_extends(db_url):
    await migrate_async(db_url)
    engine = make_engine(db_url)
    shipped = load_funding("ETHUSDT")
    last = shipped[-1].time_ms
    rows = [{"instrument": "ETHUSDT", "settle_time_ms": shipped[-2].time_ms,
             "rate": Decimal("0.000123"), "source": "live"},
            {"instrument": "ETHUSDT", "settle_time_ms": last + 8 * 3_600_000,
             "rate": Decimal("-0.00002"), "source": "live"},
            {"instrument": "SOLUSDT", "settle_time_ms": last + 8 * 3_600_000,
             "rate": Decimal("0.5"), "source": "live"}]
    try:
        async with engine.begin() as conn:
            await conn.execute(funding.insert(), rows)
        files_only = await BarHistory(None).funding("ETHUSDT", last)
        assert files_only == [(f.time_ms, float(f.rate)) for f in shipped]
        merged = await BarHistory(engine).funding("ETHUSDT", last + 8 * 3_600_000)
        assert merged[:-3] == files_only[:-2]
        assert merged[-3:] == [(shipped[-2].time_ms, 0.000123), (last, float(shipped[-1].rate)),
                               (last + 8 * 3_600_000, -0.00002)]
        # known-by filter: a rate settled after the warm-up's end is not used
        assert (await BarHistory(engine).funding("ETHUSDT", last))[-1] == (last, float(shipped[-1].rate))
    finally:
        await engine.dispose()
