"""Start-up preflight: the account is one the executor can trade safely.

Checks, in order: the venue's clock (``/v5/market/time``: signed requests are corrected by the
offset; over ``max_clock_skew_ms`` it does not pass; measured again every
``clock_sync_interval_s`` afterwards); a UNIFIED account answers ``wallet-balance``; linear USDT
positions are in one-way mode (switched if needed, "not modified" accepted); every configured
symbol gets the configured leverage (110043 "not modified" accepted); every symbol's lot filters
are cached. Until all pass, ``/readyz`` says why and intents wait (then are retried); an
auth/permission failure is fatal: intents are rejected with its code so that risk can trip the
breaker.

A failing step is retried on its own, with jittered exponential backoff, and the steps before
it are not run again (a venue with faults on from the start passes in about the time of its
slowest step, instead of restarting the whole sequence until every step succeeds in one go).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import structlog
from tm_common.errors import NotReady, TransientError
from tm_common.instruments import TRADING, InstrumentSpec

from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueError, VenueFatal, VenueRejected
from tm_executor.metrics import ExecutorMetrics
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor.preflight")


Step = tuple[str, Callable[[], Awaitable[Any]]]


class Preflight:
    """``local``: steps run before the venue's (name, coroutine function; e.g. the orderLinkId
    salt and the IP-ban silence kept in Redis): their errors are transient
    (:class:`~tm_common.errors.TransientError`) or venue errors. ``sleep``/``rand``: injectable
    for tests."""

    def __init__(self, venue: VenueClient, settings: ExecutorSettings,
                 metrics: ExecutorMetrics | None = None, *, local: Sequence[Step] = (),
                 rand: Callable[[], float] = random.random) -> None:
        self.venue, self.s, self.metrics = venue, settings, metrics
        self.local = tuple(local)
        self.rand = rand
        self.state = "pending"                 # pending | passed | fatal
        self.reason = "preflight not run yet"
        self.fatal_code: int | None = None
        self.specs: dict[str, InstrumentSpec] = {}
        self.steps: dict[str, Any] = {}
        self.done: set[str] = set()            # steps passed: never run again by run()
        self.step_attempts: dict[str, int] = {}
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

    # -- the steps, in order -----------------------------------------------------------------
    def sequence(self) -> list[Step]:
        """The checks in order: local steps, the venue's clock (over HTTP only), the account,
        one-way mode, each symbol's leverage, each symbol's lot filters."""
        out: list[Step] = list(self.local)
        if self.venue.blocking:              # a venue over HTTP: sign on its clock
            out.append(("clock", self._clock))
        out += [("account", self._account), ("position_mode", self._position_mode)]
        out += [(f"leverage:{sym}", partial(self._leverage, sym)) for sym in self.s.symbols]
        out += [(f"instrument:{sym}", partial(self._instrument, sym)) for sym in self.s.symbols]
        return out

    async def _clock(self) -> int | None:
        await self.venue.sync_clock()
        problem = self.venue.clock_problem()
        if problem is not None:
            raise VenueRejected("get_server_time", problem)
        return self.venue.clock_offset_ms

    async def _account(self) -> str:
        wallet = await self.venue.wallet()
        if wallet.get("accountType") != "UNIFIED":
            raise VenueRejected("get_wallet_balance",
                                f"account type {wallet.get('accountType')!r} is not UNIFIED")
        return "UNIFIED"

    async def _position_mode(self) -> str:
        return await self.venue.one_way_mode()

    async def _leverage(self, sym: str) -> str:
        """The configured leverage on ``sym``; a symbol the venue no longer trades (delisted,
        or not yet launched) refuses it, and is passed over: its filters (with its status)
        are still read, risk opens nothing on it, and the other symbols trade."""
        lev = format(self.s.leverage.normalize(), "f")
        try:
            return f"{await self.venue.set_leverage(sym, lev)} {lev}x"
        except VenueRejected:
            spec = await self.venue.instrument(sym)
            if spec.status == TRADING:
                raise
            log.warning("executor.instrument_not_trading", instrument=sym, status=spec.status)
            return f"skipped: {sym} is {spec.status}"

    async def _instrument(self, sym: str) -> str:
        spec = await self.venue.instrument(sym)
        self.specs = {**self.specs, sym: spec}
        return f"qtyStep {spec.qty_step}, minNotional {spec.min_notional}"

    async def _step(self, name: str, fn: Callable[[], Awaitable[Any]]) -> None:
        self.step_attempts[name] = self.step_attempts.get(name, 0) + 1
        value = await fn()
        self.steps["clock_offset_ms" if name == "clock" else name] = value
        self.done.add(name)

    async def run_once(self) -> None:
        """Every check once, in order; raises at the first failure (a venue error, or a
        :class:`~tm_common.errors.TransientError` of a local step)."""
        self.attempts += 1
        for name, fn in self.sequence():
            await self._step(name, fn)
        self._pass()

    async def run(self, stop: asyncio.Event) -> None:
        """Background task: each step in order, a failing one retried on its own with jittered
        exponential backoff (``preflight_backoff_s`` doubling up to ``preflight_retry_s``; a
        fatal failure waits 6 x ``preflight_retry_s``) while the steps that passed stay passed;
        until all passed or ``stop``."""
        self.attempts += 1
        for name, fn in self.sequence():
            backoff = self.s.preflight_backoff_s
            while name not in self.done:
                if stop.is_set():
                    return
                try:
                    await self._step(name, fn)
                    continue
                except VenueFatal as e:
                    self._fail("fatal", e, name)
                    wait = self.s.preflight_retry_s * 6
                except (VenueError, TransientError) as e:
                    self._fail("pending", e, name)
                    wait = backoff * (0.5 + self.rand())          # jitter: 0.5x .. 1.5x
                    backoff = min(backoff * 2, self.s.preflight_retry_s)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                except TimeoutError:
                    pass
        self._pass()

    def _pass(self) -> None:
        self.state, self.reason, self.fatal_code = "passed", "ok", None
        self._event().set()
        if self.metrics is not None:
            self.metrics.preflight_passed.set(1)
        log.info("executor.preflight_passed", steps=self.steps, step_attempts=self.step_attempts)

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

    def _fail(self, state: str, e: VenueError | TransientError, step: str) -> None:
        self.state = state
        self.fatal_code = e.ret_code if state == "fatal" and isinstance(e, VenueError) else None
        self.reason = (f"{step}: {e.endpoint} failed: {e.code_label}: {e.message}"
                       if isinstance(e, VenueError) else f"{step}: {e}")
        log.warning("executor.preflight_failed", state=state, step=step, reason=self.reason,
                    attempt=self.step_attempts.get(step, 0))

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
                "steps": dict(self.steps), "step_attempts": dict(self.step_attempts)}
