"""The stop loss kept resting on the venue under every position, and the fills it makes.

A background task beside the reconciler, on when ``TM_EXECUTOR_VENUE_STOP_LOSS`` (in effect:
:attr:`~tm_executor.config.ExecutorSettings.stop_loss_ratio`) is above 0. Every
``stop_check_s``, and at once after each fill the handler publishes (:meth:`StopKeeper.poke`):

1. it looks for the fills the venue's stops made (``Trade`` executions of ``stopOrderType``
   StopLoss: orders the venue created, not ours) and hands each to the handler on
   ``exec.venue`` as an ``OrderFilled`` of intent ``stop:<symbol>:<orderId>``; the handler
   publishes each exec id once on ``exec.report``, so the portfolio books the close and its
   realised PnL as it books any fill;
2. it reads the positions and, when a traded symbol holds one, the account's equity, and
   places, moves or cancels each position's stop where :func:`~tm_executor.domain.stops.
   stop_price` puts it. A stop the venue refuses (the price is already through it: the position
   lost more than the ratio) is logged and counted, and the position reported unprotected.

The reconciler asks :meth:`StopKeeper.fills_in_flight` before it compares positions: a position
the venue's stop closed, whose fill is not on ``exec.report`` yet, must not be adopted as a
difference (the portfolio would lose the close's realised PnL, then book the fill again).
Turned off (0) in a mode that follows the wall clock (paper, live), the task still runs
(:attr:`StopKeeper.active`): it cancels the stops it finds under traded positions (left from a
run with the stop on) and, until they are gone, books the fills they make. In replay with the
stop off it does not run at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from decimal import Decimal

import structlog
from tm_common.errors import TransientError

from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueError, VenueRejected
from tm_executor.domain.orders import ZERO, VenueExecution, dec
from tm_executor.domain.reconcile import ExchangePosition
from tm_executor.domain.stops import is_stop_fill, needs_move, stop_intent_id, stop_price
from tm_executor.handler_state import fill_event
from tm_executor.metrics import ExecutorMetrics
from tm_executor.preflight import Preflight
from tm_executor.repository import ExecutorRepository
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor.stops")


class StopKeeper:
    def __init__(self, venue: VenueClient, repo: ExecutorRepository, preflight: Preflight,
                 settings: ExecutorSettings, published: Callable[[], Iterable[str]],
                 metrics: ExecutorMetrics | None = None) -> None:
        """``published``: the exec ids of the stop fills the handler has published."""
        self.venue, self.repo, self.preflight, self.metrics = venue, repo, preflight, metrics
        self.published = published
        self.ratio = settings.stop_loss_ratio
        self.active = self.enabled or settings.live_clock
        self.symbols = list(settings.symbols)
        self.interval_s = settings.stop_check_s
        self._wake = asyncio.Event()
        self._handed: dict[str, str] = {}           # exec id -> symbol, handed, not published
        self.stops: dict[str, str] = {}
        self.unprotected: list[str] = []
        self.fills = 0
        self.runs = 0
        self.last: dict = {"result": "not run"}
        if metrics is not None and self.active:
            for sym in self.symbols:     # at 0 from the start: the alert sees the first fill
                metrics.fills.labels(sym, "stop")

    @property
    def enabled(self) -> bool:
        return self.ratio > 0

    def poke(self) -> None:
        """Check at once (a fill changed a position)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Background task: once the preflight passed (the ticks are known), check now, after
        each poke and every ``stop_check_s``."""
        while not stop.is_set() and not self.preflight.passed:
            await _wait(stop, self._wake, 0.2)
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.check_once()
            except VenueError as e:
                self._result("error", reason=f"{e.endpoint}: {e.code_label}: {e.message}")
            except TransientError as e:
                self._result("error", reason=f"{type(e).__name__}: {e}")
            await _wait(stop, self._wake, self.interval_s)

    async def check_once(self) -> None:
        self.runs += 1
        await self.fills_in_flight()
        positions = {p.symbol: p for p in await self.venue.positions() if p.qty != 0}
        held = [positions[s] for s in self.symbols if s in positions]
        equity = await self._equity() if held and self.enabled else ZERO
        unprotected = []
        for p in held:
            if not await self._keep(p, equity):
                unprotected.append(p.symbol)
        for sym in self.symbols:
            if sym not in positions:
                self.stops.pop(sym, None)
        self.unprotected = unprotected
        if self.metrics is not None:
            self.metrics.unprotected.clear()
            for sym in unprotected:
                self.metrics.unprotected.labels(sym).set(1)
        self._result("unprotected" if unprotected else "ok", positions=len(held),
                     equity=str(equity))

    async def fills_in_flight(self) -> bool:
        """Hand the stop fills of the venue's last 7 days that the handler has not published
        to it (on ``exec.venue``); True when it handed one, or one is not published yet (the
        reconciler then skips its comparison). The venue's default span, rather than one from the newest trade
        seen: a span needs the venue's clock, and one trade a bar keeps it to a page."""
        done = set(self.published())
        handed = False
        for sym in self.symbols:
            rows = await self.venue.recent_trades(sym)
            for r in sorted((r for r in rows if is_stop_fill(r)),
                            key=lambda r: (int(r["execTime"]), str(r["execId"]))):
                e = VenueExecution.from_bybit(r)
                if e.exec_id in done or e.exec_id in self._handed:
                    continue
                await self._hand(sym, e)
                handed = True
        for exec_id in [x for x in self._handed if x in done]:
            del self._handed[exec_id]
        return handed or bool(self._handed)

    async def _hand(self, sym: str, e: VenueExecution) -> None:
        self._handed[e.exec_id] = sym           # first: a concurrent look skips it
        try:
            await self.repo.observe(fill_event(stop_intent_id(sym, e.order_id), e),
                                    key=f"stop-fill:{e.exec_id}", correlation_id=f"stop:{sym}",
                                    ts_event_ns=e.exec_time_ms * 1_000_000)
        except BaseException:
            del self._handed[e.exec_id]
            raise
        self.fills += 1
        log.warning("executor.stop_loss_filled", instrument=sym, side=e.side, qty=str(e.qty),
                    price=str(e.price), order_id=e.order_id, exec_id=e.exec_id)

    async def _equity(self) -> Decimal:
        return dec(await self.venue.wallet(), "totalEquity", ZERO)

    async def _keep(self, p: ExchangePosition, equity: Decimal) -> bool:
        """Put ``p``'s stop where it belongs; False when the position lacks the stop it should
        carry afterwards."""
        spec = self.preflight.specs.get(p.symbol)
        if spec is None:
            return p.stop_loss != 0
        wanted = stop_price(p.qty, p.avg_price, equity, self.ratio, spec.tick_size)
        current = p.stop_loss
        if needs_move(current, wanted, p.avg_price):
            price = ZERO if wanted is None else wanted
            if await self._set(p, price, current):
                current = price
        self.stops[p.symbol] = str(current) if current else "none"
        return wanted is None or current != 0

    async def _set(self, p: ExchangePosition, price: Decimal, current: Decimal) -> bool:
        try:
            await self.venue.set_stop_loss(p.symbol, price)
        except VenueRejected as e:
            self._count(p.symbol, "refused")
            log.error("executor.venue_stop_refused", instrument=p.symbol, stop=str(price),
                      qty=str(p.qty), avg_price=str(p.avg_price), ret_code=e.ret_code,
                      reason=e.message)
            return False
        result = "cancelled" if price == 0 else "set"
        self._count(p.symbol, result)
        log.info("executor.venue_stop", instrument=p.symbol, result=result, stop=str(price),
                 was=str(current), qty=str(p.qty), avg_price=str(p.avg_price))
        return True

    def _count(self, sym: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.stop_updates.labels(sym, result).inc()

    def _result(self, result: str, **extra) -> None:
        self.last = {"result": result, **extra}

    def status(self) -> dict:
        return {"enabled": self.enabled, "active": self.active, "loss_ratio": self.ratio,
                "runs": self.runs,
                "stops": dict(sorted(self.stops.items())), "unprotected": list(self.unprotected),
                "fills_handed": self.fills, "last": dict(self.last)}


async def _wait(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    """Until ``stop`` or ``wake`` is set, or ``timeout_s`` passed."""
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
