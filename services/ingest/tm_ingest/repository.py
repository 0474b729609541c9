"""Bars and DVOL to the database: idempotent upserts, written behind the stream.

The stream is the transport and PostgreSQL the durable record: a write that fails (database
restarting) is kept and retried with backoff, in order, without blocking publication.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from tm_common.db import upsert
from tm_common.db.tables import bars as bars_table
from tm_common.db.tables import dvol as dvol_table
from tm_common.events import BarClosed, DvolUpdated

log = structlog.get_logger("tm.ingest.db")


def bar_row(b: BarClosed, event_id: str | None = None) -> dict:
    return {"instrument": b.instrument, "interval_min": b.interval_min,
            "open_time_ms": b.open_time_ms, "close_time_ms": b.close_time_ms, "open": b.open,
            "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
            "source": b.source}


def dvol_row(d: DvolUpdated) -> dict:
    return {"currency": d.currency, "day_ms": d.day_ms, "known_at_ms": d.known_at_ms,
            "value": d.value}


class MarketRepository:
    """Queues bar/DVOL rows and writes them with retries. ``backlog`` is exposed as a metric."""

    def __init__(self, engine: AsyncEngine, *, max_backoff_s: float = 10.0) -> None:
        self.engine = engine
        self.queue: asyncio.Queue[tuple[str, list[dict]]] = asyncio.Queue()
        self.failures = 0
        self.written = 0
        self.max_backoff_s = max_backoff_s
        self._inflight = False

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

    async def run(self) -> None:
        """Write queued rows forever, retrying each batch until it lands."""
        while True:
            kind, rows = await self.queue.get()
            self._inflight = True
            backoff = 0.2
            while True:
                try:
                    await self._write(kind, rows)
                    self.written += len(rows)
                    self._inflight = False
                    break
                except Exception as e:  # noqa: BLE001 - any DB failure: keep the rows, retry
                    self.failures += 1
                    log.warning("ingest.db_write_failed", kind=kind, rows=len(rows),
                                error=f"{type(e).__name__}: {str(e)[:200]}", retry_in_s=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait (at most ``timeout_s``) until :meth:`run` has written everything queued; True
        if it did. Used on shutdown, while ``run`` is still going."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.backlog and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self.backlog

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Write what is queued now (used on shutdown and in tests)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.queue.empty() and asyncio.get_running_loop().time() < deadline:
            kind, rows = self.queue.get_nowait()
            await self._write(kind, rows)
            self.written += len(rows)

    async def _write(self, kind: str, rows: list[dict]) -> None:
        table, key = (bars_table, ("instrument", "interval_min", "open_time_ms")) if kind == "bars" \
            else (dvol_table, ("currency", "day_ms"))
        async with self.engine.begin() as conn:
            for i in range(0, len(rows), 500):
                await upsert(conn, table, rows[i:i + 500], key)
