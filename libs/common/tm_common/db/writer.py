"""One write-behind writer: rows written to a table behind the stream, never blocking trading.

The handler queues row batches (:meth:`WriteBehindWriter.save`); a background task
(:meth:`~WriteBehindWriter.run`) writes them in order as idempotent upserts, retrying a failed
write with backoff (0.2 s doubling to ``max_backoff_s``) until it lands, so order is kept. The
stream holds the same facts, so a row still queued at a crash is not lost for good.

Rows are written behind, so nobody waits for them: after the first batch of a round the writer
lingers ``linger_s`` (default 0.1 s) and writes every batch queued by then in one transaction
(at most ``max_batches``). A replay then pays one transaction per few bar times instead of one
per batch: the per-transaction work was most of a service's CPU in the mesh benchmark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tm_common.db.upsert import upsert


class WriteBehindWriter:
    """Queues row batches and writes them with retries.

    A subclass names its ``service`` (logger ``tm.<service>.db``, event
    ``<service>.db_write_failed``), its ``table`` and the upsert ``key`` columns; one that writes
    several tables queues its own batches and overrides :meth:`_write` (and :meth:`_rows`).
    """

    service: ClassVar[str]
    table: ClassVar[sa.Table]
    key: ClassVar[tuple[str, ...]]

    def __init__(self, engine: AsyncEngine, *, max_backoff_s: float = 10.0,
                 linger_s: float = 0.1, max_batches: int = 500) -> None:
        self.engine = engine
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.written = self.failures = 0
        self.max_backoff_s = max_backoff_s
        self.linger_s, self.max_batches = linger_s, max_batches
        self._inflight = False
        self._log = structlog.get_logger(f"tm.{self.service}.db")

    @property
    def backlog(self) -> int:
        """Batches queued (not the one being written)."""
        return self.queue.qsize()

    def status(self) -> dict[str, int]:
        """For a service's ``/status``: batches waiting, rows written, failed writes."""
        return {"backlog": self.backlog, "written": self.written, "failures": self.failures}

    def save(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue rows; never waits for the database."""
        if rows:
            self.queue.put_nowait(list(rows))

    def _rows(self, batch: Any) -> list[dict[str, Any]]:
        """The rows of a queued batch."""
        rows: list[dict[str, Any]] = batch
        return rows

    def _log_fields(self, batch: Any) -> dict[str, Any]:
        return {}

    async def _write_in(self, conn: AsyncConnection, batch: Any) -> None:
        """Write one queued batch inside the round's transaction."""
        await upsert(conn, self.table, batch, self.key)

    async def _write(self, batches: list[Any]) -> None:
        """Write ``batches`` in order, in one transaction (all land, or none)."""
        async with self.engine.begin() as conn:
            for batch in batches:
                await self._write_in(conn, batch)

    async def run(self) -> None:
        """Write queued batches forever; a failed write is retried until it lands."""
        while True:
            batches = [await self.queue.get()]
            self._inflight = True
            if self.linger_s > 0:
                await asyncio.sleep(self.linger_s)      # gather what follows into this round
            while not self.queue.empty() and len(batches) < self.max_batches:
                batches.append(self.queue.get_nowait())
            rows = sum(len(self._rows(b)) for b in batches)
            backoff = 0.2
            while True:
                try:
                    await self._write(batches)
                    self.written += rows
                    self._inflight = False
                    break
                except Exception as e:  # noqa: BLE001 - any DB failure: keep the rows, retry
                    self.failures += 1
                    self._log.warning(f"{self.service}.db_write_failed",
                                      **self._log_fields(batches[0]), batches=len(batches),
                                      rows=rows, retry_in_s=backoff,
                                      error=f"{type(e).__name__}: {str(e)[:200]}")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait (at most ``timeout_s``) until :meth:`run` has written everything queued; True
        if it did. Used on shutdown, while ``run`` is still going."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (self._inflight or not self.queue.empty()) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return not self._inflight and self.queue.empty()

    async def drain(self, timeout_s: float | None = None) -> None:
        """Write what is queued now (shutdown, tests); raises if a write fails. A round that
        :meth:`run` took already (lingering or writing) is waited for. ``timeout_s`` None = no
        time limit."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not self.queue.empty() and (deadline is None or loop.time() < deadline):
            batch = self.queue.get_nowait()
            await self._write([batch])
            self.written += len(self._rows(batch))
        while self._inflight and (deadline is None or loop.time() < deadline):
            await asyncio.sleep(0.01)
