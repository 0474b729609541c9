"""The ``regimes`` table, written behind the stream: rows are queued and written by a background
task with retries, in order, as idempotent upserts keyed by ``(instrument, bar_time_ms)``.
Trading never waits for the database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from tm_common.db import upsert
from tm_common.db.tables import regimes as regimes_table

log = structlog.get_logger("tm.regime.db")


class RegimeRepository:
    def __init__(self, engine: AsyncEngine, *, max_backoff_s: float = 10.0) -> None:
        self.engine = engine
        self.queue: asyncio.Queue[list[dict]] = asyncio.Queue()
        self.written = self.failures = 0
        self.max_backoff_s = max_backoff_s
        self._inflight = False

    @property
    def backlog(self) -> int:
        return self.queue.qsize()

    def save(self, rows: Sequence[dict]) -> None:
        """Queue rows; never waits for the database."""
        if rows:
            self.queue.put_nowait(list(rows))

    async def run(self) -> None:
        """Write queued rows forever; a failed batch is retried (0.2 s doubling to
        ``max_backoff_s``) until it lands, so order is kept."""
        while True:
            rows = await self.queue.get()
            self._inflight = True
            backoff = 0.2
            while True:
                try:
                    await self._write(rows)
                    self.written += len(rows)
                    self._inflight = False
                    break
                except Exception as e:  # noqa: BLE001 - any DB failure: keep the rows, retry
                    self.failures += 1
                    log.warning("regime.db_write_failed", rows=len(rows), retry_in_s=backoff,
                                error=f"{type(e).__name__}: {str(e)[:200]}")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until :meth:`run` has written everything queued (True) or ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (self._inflight or not self.queue.empty()) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self._inflight and self.queue.empty()

    async def drain(self) -> None:
        """Write what is queued now, without :meth:`run` (tests)."""
        while not self.queue.empty():
            rows = self.queue.get_nowait()
            await self._write(rows)
            self.written += len(rows)

    async def _write(self, rows: list[dict]) -> None:
        async with self.engine.begin() as conn:
            await upsert(conn, regimes_table, rows, ("instrument", "bar_time_ms"))
