"""Bars, DVOL and funding rates to the database: idempotent upserts, written behind the stream.

The stream is the transport and PostgreSQL the durable record: a write that fails (database
restarting) is kept and retried with backoff, in order, without blocking publication.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection
from tm_common.db import upsert
from tm_common.db.tables import bars as bars_table
from tm_common.db.tables import dvol as dvol_table
from tm_common.db.tables import funding as funding_table
from tm_common.db.writer import WriteBehindWriter
from tm_common.events import BarClosed, DvolUpdated, FundingRateUpdated


def bar_row(b: BarClosed, event_id: str | None = None) -> dict:
    return {"instrument": b.instrument, "interval_min": b.interval_min,
            "open_time_ms": b.open_time_ms, "close_time_ms": b.close_time_ms, "open": b.open,
            "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
            "source": b.source}


def dvol_row(d: DvolUpdated) -> dict:
    return {"currency": d.currency, "day_ms": d.day_ms, "known_at_ms": d.known_at_ms,
            "value": d.value}


def funding_row(f: FundingRateUpdated) -> dict:
    return {"instrument": f.instrument, "settle_time_ms": f.settle_time_ms, "rate": f.rate,
            "source": f.source}


#: kind → (table, natural key) of a queued batch.
TABLES = {"bars": (bars_table, ("instrument", "interval_min", "open_time_ms")),
          "dvol": (dvol_table, ("currency", "day_ms")),
          "funding": (funding_table, ("instrument", "settle_time_ms"))}


class MarketRepository(WriteBehindWriter):
    """Queues bar/DVOL/funding rows and writes them with retries. ``backlog`` is exposed as a
    metric. A queued batch is ``(kind, rows)``, kind a key of :data:`TABLES`."""

    service = "ingest"

    @property
    def backlog(self) -> int:
        """Batches not written yet, the one being retried included."""
        return self.queue.qsize() + (1 if self._inflight else 0)

    def save_bars(self, bars: Sequence[BarClosed]) -> None:
        if bars:
            self.queue.put_nowait(("bars", [bar_row(b) for b in bars]))

    def save_dvol(self, points: Sequence[DvolUpdated]) -> None:
        if points:
            self.queue.put_nowait(("dvol", [dvol_row(d) for d in points]))

    def save_funding(self, rates: Sequence[FundingRateUpdated]) -> None:
        if rates:
            self.queue.put_nowait(("funding", [funding_row(f) for f in rates]))

    def _rows(self, batch: tuple[str, list[dict]]) -> list[dict]:
        return batch[1]

    def _log_fields(self, batch: tuple[str, list[dict]]) -> dict[str, str]:
        return {"kind": batch[0]}

    async def drain(self, timeout_s: float | None = 10.0) -> None:
        """Write what is queued now (used on shutdown and in tests)."""
        await super().drain(timeout_s)

    async def _write_in(self, conn: AsyncConnection, batch: tuple[str, list[dict]]) -> None:
        kind, rows = batch
        table, key = TABLES[kind]
        for i in range(0, len(rows), 500):
            await upsert(conn, table, rows[i:i + 500], key)
