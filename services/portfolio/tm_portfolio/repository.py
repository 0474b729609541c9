"""Fills and portfolio snapshots to the database: idempotent upserts, written behind the stream.

Keys: ``fills.exec_id`` and ``portfolio_snapshots.bar_time_ms`` (the positions of a snapshot are
its ``positions`` JSON column: the schema has no positions table). Rows are queued by the handler
and written by a background task that retries each batch with backoff, in order, so a database
outage never stops the portfolio (or trading); the queue is bounded by ``max_backlog`` batches,
beyond which the oldest are dropped and counted. The schema is migrated by the writer on its
first connection, retried like any write.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from tm_common.db import upsert
from tm_common.db.tables import fills as fills_table
from tm_common.db.tables import portfolio_snapshots as snapshots_table
from tm_common.events import OrderFilled, PortfolioSnapshotted

log = structlog.get_logger("tm.portfolio.db")

_TABLES = {"fills": (fills_table, ("exec_id",)),
           "snapshots": (snapshots_table, ("bar_time_ms",))}


def fill_row(f: OrderFilled, event_id: str | None) -> dict:
    return {"exec_id": f.exec_id, "intent_id": f.intent_id, "order_link_id": f.order_link_id,
            "order_id": f.order_id, "instrument": f.instrument, "side": f.side, "qty": f.qty,
            "price": f.price, "fee": f.fee, "fee_currency": f.fee_currency,
            "is_maker": f.is_maker, "exec_time_ms": f.exec_time_ms, "event_id": event_id}


def snapshot_row(s: PortfolioSnapshotted, event_id: str | None) -> dict:
    return {"bar_time_ms": s.bar_time_ms, "equity": s.equity, "cash": s.cash,
            "realised_pnl": s.realised_pnl, "unrealised_pnl": s.unrealised_pnl, "fees": s.fees,
            "funding": s.funding, "peak_equity": s.peak_equity, "drawdown": s.drawdown,
            "positions": [{"instrument": p.instrument, "qty": str(p.qty),
                           "avg_price": str(p.avg_price), "mark_price": str(p.mark_price),
                           "unrealised_pnl": str(p.unrealised_pnl)} for p in s.positions],
            "event_id": event_id}


class PortfolioRepository:
    """Write-behind queue of row batches. ``prepare``: awaited before the first write (the
    migration); retried with the writes until it succeeds. As the shared writer
    (:mod:`tm_common.db.writer`), a round lingers ``linger_s`` after its first batch and writes
    every batch queued by then (at most ``max_batches``) in one transaction."""

    def __init__(self, engine: AsyncEngine, *, prepare: Callable[[], Awaitable[None]] | None = None,
                 max_backlog: int = 100_000, max_backoff_s: float = 10.0,
                 on_change: Callable[[], None] | None = None, linger_s: float = 0.1,
                 max_batches: int = 500) -> None:
        self.engine, self.prepare = engine, prepare
        self.linger_s, self.max_batches = linger_s, max_batches
        self.queue: deque[tuple[str, list[dict]]] = deque()
        self.max_backlog, self.max_backoff_s = max_backlog, max_backoff_s
        self.on_change = on_change or (lambda: None)
        self.prepared = prepare is None
        self.written = self.failures = self.dropped = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()

    @property
    def backlog(self) -> int:
        return len(self.queue)

    def save_fill(self, fill: OrderFilled, event_id: str) -> None:
        self._put("fills", [fill_row(fill, event_id)])

    def save_snapshot(self, snap: PortfolioSnapshotted, event_id: str) -> None:
        self._put("snapshots", [snapshot_row(snap, event_id)])

    def _put(self, kind: str, rows: list[dict]) -> None:
        if len(self.queue) >= self.max_backlog:
            self.queue.popleft()
            self.dropped += 1
            log.error("portfolio.db_backlog_full", dropped=self.dropped)
        self.queue.append((kind, rows))
        self._wake.set()
        self.on_change()

    async def run(self) -> None:
        """Write queued rows forever; a failed batch stays at the head and is retried."""
        backoff = 0.2
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                if self.linger_s > 0:
                    await asyncio.sleep(self.linger_s)   # gather what follows into this round
                continue
            try:
                await self.write_head()
                backoff = 0.2
            except Exception as e:  # noqa: BLE001 - any DB failure: keep the rows, retry
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {str(e)[:200]}"
                self.on_change()
                log.warning("portfolio.db_write_failed", error=self.last_error, retry_in_s=backoff,
                            backlog=self.backlog)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def write_head(self) -> None:
        """Write the oldest queued batches, up to ``max_batches``, in one transaction (raises
        and keeps them queued on failure)."""
        if not self.prepared:
            assert self.prepare is not None
            await self.prepare()
            self.prepared = True
        head = list(itertools.islice(self.queue, self.max_batches))
        async with self.engine.begin() as conn:
            for kind, rows in head:
                table, key = _TABLES[kind]
                await upsert(conn, table, rows, key)
        for _kind, rows in head:      # the backlog cap may have dropped some meanwhile
            if self.queue and self.queue[0][1] is rows:
                self.queue.popleft()
        self.written += sum(len(rows) for _kind, rows in head)
        self.last_error = None
        self.on_change()

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Write what is queued now (tests, shutdown); raises if a write fails."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.queue and loop.time() < deadline:
            await self.write_head()

    def status(self) -> dict:
        return {"backlog": self.backlog, "written": self.written, "failures": self.failures,
                "dropped": self.dropped, "last_error": self.last_error}
