"""Start-up preflight: the account is one the executor can trade safely.

Checks, in order: the venue's clock (``/v5/market/time``: signed requests are corrected by the
offset; over ``max_clock_skew_ms`` it does not pass; measured again every
``clock_sync_interval_s`` afterwards); a UNIFIED account answers ``wallet-balance``; linear USDT
positions are in one-way mode (switched if needed, "not modified" accepted); every configured
symbol gets the configured leverage (110043 "not modified" accepted); every symbol's lot filters
are cached. Until all pass, ``/readyz`` says why and intents wait (then are retried); an
auth/permission failure is fatal: intents are rejected with its code so that risk can trip the
breaker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from tm_common.errors import NotReady

from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueError, VenueFatal, VenueRejected
from tm_executor.domain.orders import LotFilter
from tm_executor.metrics import ExecutorMetrics
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor.preflight")


class Preflight:
    def __init__(self, venue: VenueClient, settings: ExecutorSettings,
                 metrics: ExecutorMetrics | None = None) -> None:
        self.venue, self.s, self.metrics = venue, settings, metrics
        self.state = "pending"                 # pending | passed | fatal
        self.reason = "preflight not run yet"
        self.fatal_code: int | None = None
        self.lots: dict[str, LotFilter] = {}
        self.steps: dict[str, Any] = {}
        self.attempts = 0
        self._passed: asyncio.Event | None = None

    @property
    def passed(self) -> bool:
        return self.state == "passed"

    def _event(self) -> asyncio.Event:
        if self._passed is None:
            self._passed = asyncio.Event()
            if self.passed:
                self._passed.set()
        return self._passed

    async def run_once(self) -> None:
        """All checks; raises :class:`VenueError` at the first failure."""
        self.attempts += 1
        if self.venue.blocking:              # a venue over HTTP: sign on its clock
            await self.venue.sync_clock()
            self.steps["clock_offset_ms"] = self.venue.clock_offset_ms
            problem = self.venue.clock_problem()
            if problem is not None:
                raise VenueRejected("get_server_time", problem)
        wallet = await self.venue.wallet()
        if wallet.get("accountType") != "UNIFIED":
            raise VenueRejected("get_wallet_balance",
                                f"account type {wallet.get('accountType')!r} is not UNIFIED")
        self.steps["account"] = "UNIFIED"
        self.steps["position_mode"] = await self.venue.one_way_mode()
        lev = format(self.s.leverage.normalize(), "f")
        for sym in self.s.symbols:
            self.steps[f"leverage:{sym}"] = f"{await self.venue.set_leverage(sym, lev)} {lev}x"
        lots = {sym: await self.venue.instrument(sym) for sym in self.s.symbols}
        self.lots = lots
        self.steps["instruments"] = sorted(lots)

    async def run(self, stop: asyncio.Event) -> None:
        """Background task: retry until passed (fatal failures every 6 retry periods)."""
        while not stop.is_set() and not self.passed:
            try:
                await self.run_once()
            except VenueFatal as e:
                self._fail("fatal", e)
            except VenueError as e:
                self._fail("pending", e)
            else:
                self.state, self.reason, self.fatal_code = "passed", "ok", None
                self._event().set()
                if self.metrics is not None:
                    self.metrics.preflight_passed.set(1)
                log.info("executor.preflight_passed", steps=self.steps)
                return
            wait = self.s.preflight_retry_s * (6 if self.state == "fatal" else 1)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def sync_clock(self, stop: asyncio.Event) -> None:
        """Background task: once passed, measure the venue's clock every
        ``clock_sync_interval_s`` (a failure is logged; the last offset stays)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.s.clock_sync_interval_s)
            except TimeoutError:
                pass
            if stop.is_set() or not self.passed or not self.venue.blocking:
                continue
            try:
                await self.venue.sync_clock()
            except VenueError as e:
                log.warning("executor.clock_sync_failed", error=f"{e.code_label}: {e.message}")
            problem = self.venue.clock_problem()
            if problem is not None:
                log.error("executor.clock_skew", problem=problem)

    def _fail(self, state: str, e: VenueError) -> None:
        self.state, self.fatal_code = state, e.ret_code if state == "fatal" else None
        self.reason = f"{e.endpoint} failed: {e.code_label}: {e.message}"
        log.warning("executor.preflight_failed", state=state, reason=self.reason,
                    attempt=self.attempts)

    async def wait(self, timeout_s: float) -> bool:
        """True once passed; False after ``timeout_s`` (or at once when fatal)."""
        if self.passed:
            return True
        if self.state == "fatal":
            return False
        try:
            await asyncio.wait_for(self._event().wait(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    def check(self) -> bool:
        """Readiness: True when passed, else raises :class:`NotReady` with the reason."""
        if not self.passed:
            raise NotReady(f"preflight {self.state}: {self.reason}")
        return True

    def clock_problem(self) -> str | None:
        """Why the host clock is too far from the venue's to trade (None: fine)."""
        return self.venue.clock_problem()

    def check_venue(self) -> bool:
        """Readiness: the venue has not refused our credentials since the last success."""
        err = self.venue.fatal
        if err is not None:
            raise NotReady(f"venue refused the credentials: {err.code_label}: {err.message}")
        return True

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "attempts": self.attempts,
                "steps": dict(self.steps)}
