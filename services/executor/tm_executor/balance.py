"""The wallet half of a reconciliation run: the venue's USDT wallet balance against the cash of
the portfolio's newest snapshot (the rules: :mod:`tm_executor.domain.balance`).

The reconciler reads the wallet with the positions (:meth:`BalanceCheck.read`) and, in one read of
``exec.report`` beside its own, the newest fill or flow and the settlements published since the
snapshot (:meth:`BalanceCheck.changes`),
and calls :meth:`BalanceCheck.compare` once its own skip rules passed (nothing in flight, the
snapshot newer than every position change). A difference beyond ``TM_EXECUTOR_BALANCE_TOLERANCE_USDT`` is published on
``exec.report`` as ``BalanceReconciled`` (the portfolio books it as an external flow, risk
rebases its peaks on it), logged and counted. Once published it is a cash change newer than the
snapshot, so it is not published again: the next comparison waits for the snapshot that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from tm_common.events import BalanceReconciled, PortfolioSnapshotted

from tm_executor.config import ExecutorSettings
from tm_executor.domain.balance import (
    difference,
    funding_unpublished,
    pending_funding,
    usdt_balance,
)
from tm_executor.domain.reconcile import ExchangePosition
from tm_executor.handler import ExecutorHandler
from tm_executor.metrics import ExecutorMetrics
from tm_executor.preflight import Preflight
from tm_executor.repository import CashChanges, ExecutorRepository, entry_key
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor.balance")
FUNDING_INTERVAL_MS = 8 * 3_600_000      # until the preflight read the instruments


@dataclass(frozen=True, slots=True)
class Reading:
    """The wallet entry, the venue's market clock (ms) and the executor's asked funding times
    when it was read."""

    wallet: dict[str, Any]
    now_ms: int
    asked_ms: dict[str, int]


class BalanceCheck:
    def __init__(self, venue: VenueClient, repo: ExecutorRepository, handler: ExecutorHandler,
                 preflight: Preflight, settings: ExecutorSettings,
                 metrics: ExecutorMetrics | None = None) -> None:
        self.venue, self.repo, self.handler, self.preflight = venue, repo, handler, preflight
        self.s, self.metrics = settings, metrics
        self.published = 0
        self.last: dict[str, Any] = {"result": "not compared"}

    @property
    def enabled(self) -> bool:
        return self.s.balance_check

    async def read(self) -> Reading:
        """The wallet, with the venue's market clock and the funding the executor asked for
        at that moment (read with the positions, before the reconciler's in-flight checks)."""
        wallet = await self.venue.wallet()
        state = self.handler.state
        bar_ms = self.s.interval_min * 60_000
        # the venue's market clock: its server time in the modes that follow the wall clock;
        # in a replay (the venue's market moves bar by bar, and is at a bar's close before the
        # bar is published) as far as one bar past the close of the newest bar handled
        newest_close = state.guard.newest_bar_ms + bar_ms
        now_ms = max(self.venue.signing_ms(), newest_close) if self.s.live_clock \
            else newest_close + bar_ms
        return Reading(wallet, now_ms, dict(state.funding_asked_ms))

    async def changes(self, snap: tuple[str, PortfolioSnapshotted] | None) -> CashChanges | None:
        """The cash changes on ``exec.report`` since about the snapshot (read after the wallet,
        before the reconciler's in-flight checks): None when there is no snapshot, or too much
        came since it to read."""
        if snap is None:
            return None
        return await self.repo.cash_changes(entry_key(snap[0])[0] - self.s.interval_min * 60_000)

    async def compare(self, reading: Reading, changes: CashChanges | None,
                      snap: tuple[str, PortfolioSnapshotted] | None,
                      positions: list[ExchangePosition]) -> Decimal | None:
        """Publish the difference when there is one to adopt; returns it (None: none, or the
        comparison was skipped, with the reason in :attr:`last`)."""
        if snap is None:
            return self._skip("no portfolio snapshot yet")
        entry, body = snap
        if changes is None:
            return self._skip("too many exec.report entries since the snapshot")
        if changes.newest is not None and entry_key(entry) < entry_key(changes.newest):
            return self._skip("portfolio snapshot older than the last fill or flow")
        held = {p.symbol for p in positions if p.qty != 0} | {p.instrument
                                                                for p in body.positions}
        intervals = {sym: (spec.funding_interval_ms if (spec := self.preflight.specs.get(sym))
                           else FUNDING_INTERVAL_MS) for sym in self.s.symbols}
        why = funding_unpublished(self.s.symbols, venue_now_ms=reading.now_ms,
                                  intervals_ms=intervals, asked_ms=reading.asked_ms, held=held)
        if why is not None:
            return self._skip(why)
        pending = pending_funding(((k, f.instrument, f.settle_time_ms, f.payment)
                                   for k, f in changes.settled), snapshot_entry=entry_key(entry),
                                  snapshot_open_ms=body.bar_time_ms)
        cash = body.cash - pending
        balance = usdt_balance(reading.wallet)
        diff = difference(balance, cash, self.s.balance_tolerance_usdt)
        self.last = {"result": "ok" if diff is None else "difference",
                     "venue_balance": str(balance), "portfolio_cash": str(cash),
                     "funding_after_snapshot": str(pending), "snapshot_bar_ms": body.bar_time_ms}
        if diff is None:
            return None
        reason = ("deposit" if diff > 0 else "withdrawal") + " or cash the mesh did not see"
        await self.repo.report(BalanceReconciled(
            venue_balance=balance, portfolio_cash=cash, amount=diff,
            snapshot_bar_ms=body.bar_time_ms, reason=reason),
            key=f"balance:{entry}:{diff}", correlation_id=f"balance:{body.bar_time_ms}")
        self.published += 1
        direction = "in" if diff > 0 else "out"
        if self.metrics is not None:
            self.metrics.balance_flows.labels(direction).inc()
            self.metrics.balance_flow_usdt.labels(direction).inc(float(abs(diff)))
        log.warning("executor.balance_reconciled", venue_balance=str(balance),
                    portfolio_cash=str(cash), amount=str(diff))
        self.last["amount"] = str(diff)
        return diff

    def _skip(self, reason: str) -> Decimal | None:
        self.last = {"result": "skipped", "reason": reason}
        return None

    def status(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "published": self.published, "last": dict(self.last)}
