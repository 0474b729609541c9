"""Reconciliation: the exchange's positions against the portfolio's view, at start and on a
schedule. The exchange is the truth: a difference is published as ``PositionReconciled`` on
``exec.report`` (the portfolio adopts it) and logged.

A comparison is only meaningful when both sides have seen the same fills, so a run is skipped
when an intent is being handled during it (its fills are not on ``exec.report`` yet), or when
the newest fill or reconciliation on ``exec.report`` is newer than the newest portfolio
snapshot (the portfolio has not caught up). The second rule also stops a difference from being
published twice: once published, it is newer than the snapshot until the portfolio adopts it.
Only the configured symbols (``TM_SYMBOLS``) are compared; a position in any other symbol is
foreign (manual, another bot): reported as ``tm_executor_foreign_positions{instrument}``, a
warning log and in ``/status``, never published as a reconciliation.
Open orders are compared with the handler's open orders; an order of ours that the executor
does not know is reported (metric, log, ``/status``), never cancelled automatically; "ours" is
this deployment's salt (:mod:`tm_executor.links`): another deployment's orders on a shared
account count as foreign open orders.
With the venue stop loss on (:mod:`tm_executor.stops`), a run also skips while a fill of a
stop is not on ``exec.report`` yet (the venue closed the position itself).
A run that compared the positions also compares the venue's USDT wallet balance with the
snapshot's cash (:mod:`tm_executor.balance`, read with the positions).
"""

from __future__ import annotations

import asyncio

import structlog
from tm_common.errors import TransientError
from tm_common.events import PositionReconciled

from tm_executor.balance import BalanceCheck
from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueError
from tm_executor.domain.reconcile import PositionDiff, position_diffs
from tm_executor.handler import ExecutorHandler
from tm_executor.metrics import ExecutorMetrics
from tm_executor.preflight import Preflight
from tm_executor.repository import ExecutorRepository, entry_key
from tm_executor.stops import StopKeeper
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor.reconcile")


class Reconciler:
    def __init__(self, venue: VenueClient, repo: ExecutorRepository, handler: ExecutorHandler,
                 preflight: Preflight, settings: ExecutorSettings,
                 metrics: ExecutorMetrics | None = None, *,
                 stops: StopKeeper | None = None, balance: BalanceCheck | None = None) -> None:
        self.venue, self.repo, self.handler, self.stops = venue, repo, handler, stops
        self.balance = balance
        self.links = handler.placer.links
        self.preflight, self.s, self.metrics = preflight, settings, metrics
        self.runs = 0
        self.published = 0
        self.last: dict = {"result": "not run"}

    async def run(self, stop: asyncio.Event) -> None:
        """Background task: once the preflight passed, reconcile now and every interval."""
        while not stop.is_set() and not self.preflight.passed:
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.2)
            except TimeoutError:
                pass
        while not stop.is_set():
            try:
                await self.reconcile_once()
            except VenueError as e:
                self._result("error", reason=f"{e.endpoint}: {e.code_label}: {e.message}")
            except TransientError as e:          # Redis (the salt, the snapshot): next run
                self._result("error", reason=f"{type(e).__name__}: {e}")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.s.reconcile_interval_s)
            except TimeoutError:
                pass

    async def reconcile_once(self) -> list[PositionDiff]:
        """One comparison; returns the differences published (empty when skipped)."""
        self.runs += 1
        await self.links.ensure()
        if self.handler.busy:
            return self._skip("an intent is being handled")
        activity = self.handler.activity
        positions = await self.venue.positions()
        orders = await self.venue.open_orders()
        reading = await self.balance.read() if self.balance and self.balance.enabled else None
        if self.stops is not None and self.stops.active and await self.stops.fills_in_flight():
            # the venue's stop closed a position after (or while) it was read: its fill is on
            # its way to exec.report, and the position would look unexplained
            return self._skip("venue stop-loss fills in flight")
        snap = await self.repo.latest_snapshot()
        change = await self.repo.latest_position_change()
        cash = None if reading is None or self.balance is None \
            else await self.balance.changes(snap)
        if self.handler.busy or self.handler.activity != activity:
            return self._skip("an intent was handled meanwhile")
        if change is not None and (snap is None or entry_key(snap[0]) < entry_key(change)):
            return self._skip("portfolio snapshot older than the last fill or reconciliation")
        venue_open = {o.order_link_id for o in orders if not o.terminal}
        closed = sorted(o.link_id for o in self.handler.open_orders() if o.link_id not in venue_open)
        if closed:
            # the venue filled (or cancelled) an order the executor still holds open: its fills
            # are on their way (WebSocket, poller) and the position would look unexplained
            return self._skip(f"fills in flight for {', '.join(closed)}")
        view = {p.instrument: p.qty for p in snap[1].positions} if snap else {}
        symbols = set(self.s.symbols)
        foreign = sorted(p.symbol for p in positions if p.qty != 0 and p.symbol not in symbols)
        self._foreign(foreign)
        diffs = position_diffs(positions, view, symbols)
        bar_ms = snap[1].bar_time_ms if snap else 0
        for d in diffs:
            await self.repo.report(PositionReconciled(
                instrument=d.symbol, exchange_qty=d.exchange_qty, portfolio_qty=d.portfolio_qty,
                avg_price=d.avg_price, reason=d.reason),
                key=f"reconcile:{snap[0] if snap else '-'}:{d.symbol}:{d.exchange_qty}",
                correlation_id=f"{d.symbol}:{bar_ms}")
            self.published += 1
            if self.metrics is not None:
                self.metrics.reconcile_diffs.labels(d.symbol).inc()
            log.warning("executor.position_reconciled", instrument=d.symbol,
                        exchange_qty=str(d.exchange_qty), portfolio_qty=str(d.portfolio_qty),
                        reason=d.reason)
        known = {o.link_id for o in self.handler.open_orders()}
        unknown = sorted(o.order_link_id for o in orders
                         if self.links.ours(o.order_link_id) and not o.terminal
                         and o.order_link_id not in known)
        if unknown:
            log.warning("executor.unknown_open_orders", order_link_ids=unknown)
        if reading is not None and self.balance is not None:
            await self.balance.compare(reading, cash, snap, positions)
        self._result("differences" if diffs else "ok", differences=len(diffs),
                     snapshot=snap[0] if snap else None, unknown_open_orders=unknown,
                     foreign_positions=foreign,
                     foreign_open_orders=sum(1 for o in orders if not self.links.ours(o.order_link_id)))
        return diffs

    def _foreign(self, symbols: list[str]) -> None:
        """Positions in symbols the executor does not trade (manual, another bot): a warning
        (metric and log), never a reconciliation: the portfolio does not own them."""
        if self.metrics is not None:
            self.metrics.foreign_positions.clear()
            for sym in symbols:
                self.metrics.foreign_positions.labels(sym).set(1)
        if symbols:
            log.warning("executor.foreign_positions", instruments=symbols,
                        note="not in TM_SYMBOLS: not reconciled")

    def _skip(self, reason: str) -> list[PositionDiff]:
        self._result("skipped", reason=reason)
        return []

    def _result(self, result: str, **extra) -> None:
        self.last = {"result": result, **extra}
        if self.metrics is not None:
            self.metrics.reconcile_runs.labels(result).inc()

    def status(self) -> dict:
        return {"runs": self.runs, "published": self.published, "last": dict(self.last),
                "balance": self.balance.status() if self.balance else {"enabled": False}}
