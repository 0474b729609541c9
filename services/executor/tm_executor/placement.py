"""The idempotency protocol: one intent → at most one venue order, whatever fails.

For one ``OrderApproved`` (``link`` = ``links.link(intent_id)``: the intent id hashed with the
deployment's salt, :mod:`tm_executor.links`):

1. Look the order up by ``link`` (``order/realtime``, then ``order/history``). Found → step 4.
   This runs first on every handling but a first one: a redelivery after a crash, a retry after
   a timeout, a 5xx or a rate limit all start here, so an order that reached the venue is
   found, never placed again. A first handling (the entry's first delivery, its first call:
   :func:`tm_common.bus.handling.first_handling`) cannot have sent anything before, so it goes
   straight to step 2: one venue round trip less on every order, the common case.
2. Not found → ``place_order`` with ``orderLinkId = link``.
   - accepted → step 4 with the returned ``orderId``;
   - 110072 (duplicate ``orderLinkId``: an earlier attempt did land) → back to step 1;
   - transient (timeout, connection lost, 5xx, 10006 rate limit, 10002, 10016) → wait (until
     the rate-limit reset, else exponential backoff) and back to step 1 — never straight to
     another ``place_order``;
   - rejection (10001, 110007, 110017, ...) → if an earlier attempt was ambiguous, look once
     more (step 1) before concluding; else the intent ends as ``OrderRejected``;
   - fatal (10003/10004/10005 ...) → ``OrderRejected`` and the service marked not ready.
3. The loop is bounded by ``intent_deadline_s`` and ``place_attempts``; past them a
   :class:`VenueTransient` leaves the intent unacked, and the consumer retries it (from step 1).
4. Settle: the order's state and executions. For a market order (or any terminal order) the
   executions are polled by ``orderId`` until they add up to ``cumExecQty`` or ``fill_wait_s``
   passes; the result (``OrderReported`` + one ``OrderFilled`` per execution) is committed with
   the intent's ack. A market order this handling placed asks for its executions first: when
   they already add up to the quantity sent, the order is ``Filled`` and its state is not
   asked for (two round trips in all, place and executions); else its state is looked up and
   settled as above.

A second line of defence is the venue itself: Bybit refuses a second order with a known
``orderLinkId`` (110072), which step 2 resolves by looking the first one up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import cast

import structlog
from tm_common.events import OrderApproved

from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import (
    DUPLICATE_ORDER_LINK_ID,
    VenueFatal,
    VenueRejected,
    VenueTransient,
)
from tm_executor.domain.orders import (
    VenueExecution,
    VenueOrder,
    fills_complete,
    order_params,
    trade_fills,
)
from tm_executor.links import LinkIds
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor.placement")


@dataclass(frozen=True)
class Outcome:
    """How an intent ended: ``order`` (+ its ``fills``) when the venue has it, else a
    rejection with ``ret_code`` and ``reason``; ``fatal`` for auth/permission failures."""

    link_id: str
    order: VenueOrder | None = None
    fills: tuple[VenueExecution, ...] = ()
    ret_code: int | None = None
    reason: str = ""
    fatal: bool = False
    placed: bool = False             # this handling sent the place_order that created it
    attempts: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        return self.order is not None

    @property
    def settled(self) -> bool:
        return self.order is not None and fills_complete(self.order, self.fills)


class OrderPlacer:
    """Runs the protocol above. ``sleep`` and ``clock`` are injectable for tests."""

    def __init__(self, venue: VenueClient, settings: ExecutorSettings, links: LinkIds, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.venue, self.s, self.sleep, self.clock = venue, settings, sleep, clock
        self.links = links
        self.places = 0           # place_order calls that returned (the crash hook counts them)

    async def execute(self, intent: OrderApproved, *, first: bool = False) -> Outcome:
        """``first``: a first handling of the intent (step 1): its first try sends without
        a lookup; every later try in the loop looks first."""
        link = self.links.link(intent.intent_id)
        deadline = self.clock() + self.s.intent_deadline_s
        backoff = self.s.retry_backoff_s
        attempts, ambiguous, placed = 0, False, False
        notes: list[str] = []
        while True:
            try:
                if first:
                    order, first = None, False      # nothing can be at the venue yet
                else:
                    order = await self.venue.get_order(intent.instrument, link_id=link)
                if order is None and placed:     # accepted earlier: never place again
                    raise VenueTransient("get_open_orders", "accepted order not visible yet")
                if order is None:
                    if attempts >= self.s.place_attempts:
                        raise VenueTransient("place_order", f"no answer after {attempts} "
                                             "attempts; left for a later retry")
                    attempts += 1
                    params = order_params(intent, link)
                    try:
                        order_id = await self.venue.place_order(params)
                    except VenueRejected as e:
                        if e.ret_code == DUPLICATE_ORDER_LINK_ID:
                            notes.append("duplicate orderLinkId: looked up")
                            continue
                        if ambiguous:
                            ambiguous = False        # look once more before concluding
                            notes.append(f"rejected {e.ret_code} after an ambiguous attempt")
                            found = await self.venue.get_order(intent.instrument, link_id=link)
                            if found is not None:
                                return await self._settle(found, link, attempts, placed, notes)
                        return Outcome(link, ret_code=e.ret_code, reason=e.message,
                                       attempts=attempts, notes=tuple(notes))
                    except VenueTransient as e:
                        ambiguous = ambiguous or e.ambiguous
                        raise
                    placed = True
                    self._after_place()
                    fills = None
                    if intent.order_type == "Market":     # fills at once, or never (IOC)
                        fills = trade_fills(await self.venue.get_executions(
                            intent.instrument, order_id), order_id)
                        done = _filled(params, order_id, fills)
                        if done is not None:
                            return Outcome(link, order=done, fills=tuple(fills),
                                           attempts=attempts, placed=True, notes=tuple(notes))
                    order = await self.venue.get_order(intent.instrument, order_id=order_id)
                    if order is None:        # accepted but not visible yet: look up by link
                        raise VenueTransient("get_open_orders", "accepted order not visible yet")
                    return await self._settle(order, link, attempts, placed, notes, fills)
                return await self._settle(order, link, attempts, placed, notes)
            except VenueFatal as e:
                return Outcome(link, ret_code=e.ret_code, reason=e.message, fatal=True,
                               attempts=attempts, notes=tuple(notes))
            except VenueTransient as e:
                wait = e.retry_after_s if e.retry_after_s is not None else backoff
                if self.clock() + wait > deadline:
                    # the executor's venue errors always name their endpoint
                    raise VenueTransient(cast(str, e.endpoint), f"intent deadline passed; last error: "
                                         f"{e.code_label}: {e.message}", ambiguous=e.ambiguous,
                                         ret_code=e.ret_code, http_status=e.http_status) from e
                notes.append(f"{e.endpoint} {e.code_label}")
                await self.sleep(wait)
                backoff = min(backoff * 2, self.s.max_backoff_s)
            except VenueRejected as e:       # a lookup refused for good (bad symbol, ...)
                return Outcome(link, ret_code=e.ret_code, reason=e.message, attempts=attempts,
                               notes=tuple(notes))

    async def _settle(self, order: VenueOrder, link: str, attempts: int, placed: bool,
                      notes: list[str], fills: list[VenueExecution] | None = None) -> Outcome:
        """The order's executions: for a market (or terminal) order, polled until they add up
        to ``cumExecQty`` or ``fill_wait_s`` passes; transient errors go to the caller's
        loop, which looks the order up again. ``fills``: those read already."""
        if fills is None:
            fills = await self._fills(order)
        if order.order_type == "Market" or order.terminal:
            until = self.clock() + self.s.fill_wait_s
            pause = 0.01
            while not fills_complete(order, fills) and self.clock() < until:
                await self.sleep(pause)
                pause = min(pause * 2, 0.25)
                if not order.terminal:
                    order = await self.venue.get_order(order.symbol, order_id=order.order_id) \
                        or order
                fills = await self._fills(order)
        return Outcome(link, order=order, fills=tuple(fills), attempts=attempts, placed=placed,
                       notes=tuple(notes))

    async def _fills(self, order: VenueOrder) -> list[VenueExecution]:
        if order.cum_exec_qty == 0 and order.order_type != "Market":
            return []
        execs = await self.venue.get_executions(order.symbol, order.order_id)
        return trade_fills(execs, order.order_id)

    def _after_place(self) -> None:
        self.places += 1
        n = self.s.test_crash_after_place
        if n and self.places >= n:
            log.warning("executor.test_crash_after_place", places=self.places)
            os._exit(99)
        armed = self.s.chaos_crash_after_send_file
        if armed:
            try:
                os.unlink(armed)        # one armed file = one crash, taken by one process
            except FileNotFoundError:
                return
            log.warning("executor.chaos_crash_after_send", places=self.places)
            os.kill(os.getpid(), signal.SIGKILL)


def _filled(params: dict, order_id: str, fills: list[VenueExecution]) -> VenueOrder | None:
    """The order placed with ``params``, ``Filled``, when its trade executions add up to the
    quantity sent; else None (its state must be asked for)."""
    qty = Decimal(params["qty"])
    if not fills or sum((f.qty for f in fills), Decimal(0)) != qty:
        return None
    return VenueOrder(order_id=order_id, order_link_id=params["orderLinkId"],
                      symbol=params["symbol"], side=params["side"],
                      order_type=params["orderType"], status="Filled", qty=qty,
                      cum_exec_qty=qty)


__all__ = ["OrderPlacer", "Outcome"]
