"""Fill the market-data tables (``bars``, ``funding``, ``dvol``) from history CSV files, as
``tm backfill`` and live ingest would have: the training tests' database."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tm_common.db import upsert
from tm_common.db.tables import bars, dvol, funding
from tm_common.history import load_bars, load_dvol, load_funding


async def store_history(engine: AsyncEngine, directory: str | Path | None,
                        symbols: Sequence[str], first: int, last: int) -> None:
    """Bars ``first..last-1`` (row indexes of each ``{SYM}_4h.csv`` in ``directory``; None = the
    shipped files) of ``symbols``, and the funding rates and BTC DVOL days before the newest of
    those bars' closes. Upserts, so overlapping calls are harmless."""
    async with engine.begin() as conn:
        end_ms = 0
        for sym in symbols:
            rows = load_bars(sym, directory=directory)[first:last]
            end_ms = max(end_ms, rows[-1].close_time_ms)
            await upsert(conn, bars, [
                {"instrument": sym, "interval_min": 240, "open_time_ms": b.open_time_ms,
                 "close_time_ms": b.close_time_ms - 1, "open": Decimal(b.open),
                 "high": Decimal(b.high), "low": Decimal(b.low), "close": Decimal(b.close),
                 "volume": Decimal(b.volume), "source": "backfill"} for b in rows],
                ("instrument", "interval_min", "open_time_ms"))
            await upsert(conn, funding, [
                {"instrument": sym, "settle_time_ms": f.time_ms, "rate": f.rate_decimal,
                 "source": "backfill"} for f in load_funding(sym, directory=directory)
                if f.time_ms < end_ms], ("instrument", "settle_time_ms"))
        await upsert(conn, dvol, [
            {"currency": "BTC", "day_ms": d.day_ms, "known_at_ms": d.known_at_ms,
             "value": float(d.close)} for d in load_dvol("BTC", directory=directory)
            if d.day_ms < end_ms], ("currency", "day_ms"))
