"""One write-behind writer: rows written to a table behind the stream, never blocking trading.

The handler queues row batches (:meth:`WriteBehindWriter.save`); a background task
(:meth:`~WriteBehindWriter.run`) writes them in order as idempotent upserts, retrying a failed
write with backoff (0.2 s doubling to ``max_backoff_s``) until it lands, so order is kept. The
stream holds the same facts, so a row still queued at a crash is not lost for good.

Rows are written behind, so nobody waits for them: after the first batch of a round the writer
lingers ``linger_s`` (default 0.1 s) and writes every batch queued by then in one transaction
(at most ``max_batches``). A replay then pays one transaction per few bar times instead of one
per batch: the per-transaction work was most of a service's CPU in the mesh benchmark.

``backlog`` counts the batches not written yet, the round being written included;
``last_error`` is the error of the last failed write (None once a write lands).

Options (all off by default): ``prepare``, a coroutine awaited before the first write (the
portfolio's migration: a service that starts while the database is down still starts), retried
with the writes until it succeeds; ``max_backlog``, a cap on the queued batches beyond which the
oldest is dropped, counted in ``dropped`` and logged as an error (None: unbounded);
``on_change``, called after each change of the counts (a batch queued, written or failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tm_common.db.upsert import upsert


class WriteBehindWriter:
    """Queues row batches and writes them with retries.

    A subclass names its ``service`` (logger ``tm.<service>.db``, events
    ``<service>.db_write_failed`` and ``<service>.db_backlog_full``), its ``table`` and the upsert
    ``key`` columns; one that writes several tables is a :class:`TablesWriter`.
    """

    service: ClassVar[str]
    table: ClassVar[sa.Table]
    key: ClassVar[tuple[str, ...]]

    def __init__(self, engine: AsyncEngine, *, max_backoff_s: float = 10.0,
                 linger_s: float = 0.1, max_batches: int = 500,
                 prepare: Callable[[], Awaitable[None]] | None = None,
                 max_backlog: int | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.written = self.failures = self.dropped = 0
        self.last_error: str | None = None
        self.max_backoff_s = max_backoff_s
        self.linger_s, self.max_batches = linger_s, max_batches
        self.prepare, self.max_backlog = prepare, max_backlog
        self.on_change = on_change or (lambda: None)
        self._round: list[Any] = []     # the batches taken to be written, not landed yet
        self._running = False
        self._log = structlog.get_logger(f"tm.{self.service}.db")

    @property
    def backlog(self) -> int:
        """Batches not written yet: queued, and the round being written."""
        return self.queue.qsize() + len(self._round)

    def status(self) -> dict[str, Any]:
        """For a service's ``/status``: batches waiting, rows written, failed writes, batches
        dropped (backlog cap), the error of the last failed write (None once one lands)."""
        return {"backlog": self.backlog, "written": self.written, "failures": self.failures,
                "dropped": self.dropped, "last_error": self.last_error}

    def save(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue rows; never waits for the database."""
        if rows:
            self._put(list(rows))

    def _put(self, batch: Any) -> None:
        """Queue one batch, dropping the oldest queued one when ``max_backlog`` are queued."""
        if self.max_backlog is not None and self.queue.qsize() >= self.max_backlog:
            self.queue.get_nowait()
            self.dropped += 1
            self._log.error(f"{self.service}.db_backlog_full", dropped=self.dropped)
        self.queue.put_nowait(batch)
        self.on_change()

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

    async def _land(self) -> None:
        """``prepare`` (until it has once succeeded), then write the round and count it; raises,
        keeping the round, when either fails."""
        if self.prepare is not None:
            await self.prepare()
            self.prepare = None
        await self._write(self._round)
        self.written += sum(len(self._rows(b)) for b in self._round)
        self._round = []
        self.last_error = None
        self.on_change()

    async def run(self) -> None:
        """Write queued batches forever; a failed write is retried until it lands."""
        self._running = True
        try:
            while True:
                self._round = [await self.queue.get()]
                if self.linger_s > 0:
                    await asyncio.sleep(self.linger_s)      # gather what follows into this round
                while not self.queue.empty() and len(self._round) < self.max_batches:
                    self._round.append(self.queue.get_nowait())
                await self._retry()
        finally:
            self._running = False

    async def _retry(self) -> None:
        """Land the round, retrying with backoff until it does."""
        backoff = 0.2
        while True:
            try:
                await self._land()
                return
            except Exception as e:  # noqa: BLE001 - any DB failure: keep the rows, retry
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {str(e)[:200]}"
                self.on_change()
                self._log.warning(f"{self.service}.db_write_failed",
                                  **self._log_fields(self._round[0]), batches=len(self._round),
                                  rows=sum(len(self._rows(b)) for b in self._round),
                                  retry_in_s=backoff, error=self.last_error)
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

    async def drain(self, timeout_s: float | None = None) -> None:
        """Write what is queued now, in order (shutdown, tests); raises if a write fails (the
        batch stays in the backlog). While :meth:`run` goes on, this waits for it to write
        everything (as :meth:`flush`); a round that ``run`` took and did not land before it was
        stopped is written first. ``timeout_s`` None = no time limit."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while self.backlog and (deadline is None or loop.time() < deadline):
            if self._running:
                await asyncio.sleep(0.01)
                continue
            self._round = self._round or [self.queue.get_nowait()]
            await self._land()


class TablesWriter(WriteBehindWriter):
    """A write-behind writer for several tables: a queued batch is ``(kind, rows)``, ``kind`` a
    key of the subclass's ``tables`` (kind → (table, upsert key columns)). A round writes its
    batches in queue order, across tables, in one transaction; a batch's rows go in upserts of
    at most ``chunk_rows`` (a backfill's thousands of bars stay under the driver's parameter
    limit)."""

    tables: ClassVar[Mapping[str, tuple[sa.Table, tuple[str, ...]]]]
    chunk_rows: ClassVar[int] = 500

    def save_to(self, kind: str, rows: Sequence[dict[str, Any]]) -> None:
        """Queue rows for the table of ``kind``; never waits for the database."""
        if kind not in self.tables:
            raise KeyError(f"{self.service} writes no table {kind!r}; it writes {sorted(self.tables)}")
        if rows:
            self._put((kind, list(rows)))

    def _rows(self, batch: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return batch[1]

    def _log_fields(self, batch: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return {"kind": batch[0]}

    async def _write_in(self, conn: AsyncConnection,
                        batch: tuple[str, list[dict[str, Any]]]) -> None:
        kind, rows = batch
        table, key = self.tables[kind]
        for i in range(0, len(rows), self.chunk_rows):
            await upsert(conn, table, rows[i:i + self.chunk_rows], key)
