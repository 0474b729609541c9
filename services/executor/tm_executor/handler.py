"""The executor's handler: the one writer of ``exec.report``.

Inputs, on one consumer (so that every output and the state commit atomically with the input's
ack, in one order):

- ``OrderApproved`` on ``risk.order``: run the idempotency protocol
  (:mod:`tm_executor.placement`); emit ``OrderReported`` and the order's fills
  (``OrderFilled``), or ``OrderRejected`` (source ``executor``, retCode, reason). For a market
  order the fills are in the same commit as the intent's ack: when the intent is acked, its
  fills are published (lockstep replay relies on it).
- ``BreakerStateChanged`` on ``risk.breaker`` and ``BarClosed`` on ``md.bar``: the guard's view
  (the breaker, the newest bar and closes; :mod:`tm_executor.domain.guard`). Every intent passes
  the guard before anything else: a refusal is an ``OrderRejected`` (source ``executor``,
  reason ``guard <rule>: ...``) and ``tm_executor_guard_refusals_total{rule}``; nothing is sent.
- ``OrderFilled`` / ``OrderReported`` on the executor's own ``exec.venue`` stream: fills and
  terminal states observed later by the private WebSocket or the poller, for orders that were
  still open when reported (e.g. resting limit orders). Published once: the state keeps, per open
  order, the ``exec_id``\\ s already published, and drops the order when it is terminal.

State (saved with each commit): the open orders, each with its published ``exec_id``\\ s (small:
orders not yet terminal; not needed for idempotency: the venue is the source of truth for
whether an intent's order exists, see :mod:`tm_executor.placement`), and the guard's view (the
breaker, the newest bar and closes, the positions counted from the fills published), so that a
restart or a redelivery decides an intent as the first handling did.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal

import msgspec
import structlog
from tm_common.bus import Emit
from tm_common.bus.handling import first_handling
from tm_common.bus.streams import EXEC_REPORT
from tm_common.errors import TransientError
from tm_common.events import (
    BarClosed,
    BreakerStateChanged,
    Envelope,
    FundingSettled,
    OrderApproved,
    OrderFilled,
    OrderRejected,
    OrderReported,
)
from tm_common.instruments import FUNDING_INTERVAL_MIN

from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueRejected
from tm_executor.domain.funding import settles_in_bar, span_start, windows
from tm_executor.domain.guard import COUNTED_INTENTS, Refusal, check, signed
from tm_executor.domain.orders import TERMINAL_STATUSES, VenueExecution, check_intent
from tm_executor.domain.stops import STOP_INTENT_PREFIX
from tm_executor.handler_state import (
    STOP_FILLS_KEPT,
    HandlerState,
    OpenOrder,
    decode_state,
    encode_state,
    fill_event,
)
from tm_executor.metrics import ExecutorMetrics
from tm_executor.placement import OrderPlacer, Outcome
from tm_executor.preflight import Preflight

log = structlog.get_logger("tm.executor")
#: How far before an instrument's deliveryTime its Delivery executions are looked for (the
#: venue books them at that time; an hour of slack for its clock).
DELIVERY_EARLY_MS = 3_600_000


class ExecutorHandler:
    """``StatefulHandler`` for ``risk.order`` + ``exec.venue``. ``busy``/``activity`` let the
    reconciler skip a run that overlaps an intent (its fills are not in exec.report yet)."""

    def __init__(self, settings: ExecutorSettings, placer: OrderPlacer, preflight: Preflight,
                 metrics: ExecutorMetrics | None = None, *, out_stream: str = EXEC_REPORT,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.s, self.placer, self.preflight, self.metrics = settings, placer, preflight, metrics
        self.out = out_stream
        self.limits = settings.guard_limits()
        # the clock ages intents in the live modes only: replay and backtest are bar time
        self.clock: Callable[[], int] | None = clock if settings.live_clock else None
        self.refusals: dict[str, int] = {}
        self.state = HandlerState()
        self.busy = False
        self.activity = 0
        self.counts: dict[str, int] = {}
        # called after a fill is published (the venue stop keeper checks the position)
        self.on_fill: Callable[[], None] | None = None

    # -- StatefulHandler -------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return encode_state(self.state)

    def restore(self, data: bytes | None) -> None:
        self.state = decode_state(data)
        if self.metrics is not None:
            self.metrics.open_orders.set(len(self.state.open))
            self.metrics.set_breaker(self.state.guard.breaker)

    def open_orders(self) -> list[OpenOrder]:
        """A copy of the open orders (for the WebSocket filter and the poller)."""
        return [msgspec.structs.replace(o, seen=list(o.seen)) for o in self.state.open.values()]

    # -- handling --------------------------------------------------------------------------
    async def handle(self, event: Envelope) -> Sequence[Emit]:
        self.busy, self.activity = True, self.activity + 1
        try:
            body = event.body
            if isinstance(body, OrderApproved):
                out = await self._intent(event, body)
            elif isinstance(body, OrderFilled):
                out = self._observed_fill(body)
            elif isinstance(body, OrderReported):
                out = self._observed_state(body)
            elif isinstance(body, BarClosed):
                self._saw_bar(body)
                out = await self._funding(body) + await self._delivery(body)
            elif isinstance(body, BreakerStateChanged):
                out = self._breaker(body)
            else:
                out = []
            if self.metrics is not None:
                self.metrics.open_orders.set(len(self.state.open))
            if self.on_fill is not None and any(isinstance(e.body, OrderFilled) for e in out):
                self.on_fill()
            return out
        finally:
            self.busy, self.activity = False, self.activity + 1

    def _saw_bar(self, bar: BarClosed) -> None:
        g = self.state.guard
        g.newest_bar_ms = max(g.newest_bar_ms, bar.open_time_ms)
        g.closes[bar.instrument] = bar.close

    def _breaker(self, b: BreakerStateChanged) -> list[Emit]:
        g = self.state.guard
        g.breaker, g.breaker_reason = b.to_state, f"{b.trigger}: {b.reason}"[:200]
        if self.metrics is not None:
            self.metrics.set_breaker(b.to_state)
        log.info("executor.breaker", state=b.to_state, trigger=b.trigger)
        return []

    def _guard(self, intent: OrderApproved) -> Refusal | None:
        if intent.intent_id in self.state.guard.counted:
            return None           # placed already (a replayed entry): reported again, as before
        now_ms = None if self.clock is None else self.clock() // 1_000_000
        return check(intent, self.state.guard, self.limits, now_ms)

    async def _sent_before(self, intent: OrderApproved) -> bool:
        """Whether the venue holds an order for ``intent`` already (looked up by its link id).
        A lookup the venue refuses for good counts as no order; a transient failure leaves the
        intent for a later retry (:class:`~tm_common.errors.TransientError`)."""
        try:
            found = await self.placer.venue.get_order(intent.instrument,
                                                      link_id=self.placer.links.link(intent.intent_id))
        except VenueRejected:
            return False
        return found is not None

    def _filled(self, instrument: str, side: str, qty: Decimal) -> None:
        """Count a published fill into the guard's position view."""
        pos = self.state.guard.positions
        after = pos.get(instrument, Decimal(0)) + signed(side, qty)
        if after:
            pos[instrument] = after
        else:
            pos.pop(instrument, None)

    async def _intent(self, event: Envelope, intent: OrderApproved) -> list[Emit]:
        await self.placer.links.ensure()        # the salt first: no link id without it
        refusal = self._guard(intent)
        if refusal is not None and await self._sent_before(intent):
            # an earlier handling of this intent reached the venue (its answer lost, its
            # deadline passed) and the view moved on since: the order exists, so it is
            # reported, never refused (a refusal would leave a venue order no one accounts for)
            log.warning("executor.guard_skipped_sent_order", intent_id=intent.intent_id,
                        rule=refusal.rule)
            refusal = None
        if refusal is not None:
            self.refusals[refusal.rule] = self.refusals.get(refusal.rule, 0) + 1
            if self.metrics is not None:
                self.metrics.guard_refusals.labels(self._label(intent.instrument),
                                                   refusal.rule).inc()
            return [self._reject(intent, None, f"guard {refusal.rule}: {refusal.reason}")]
        if not await self.preflight.wait(self.s.preflight_wait_s):
            if self.preflight.state == "fatal":
                return [self._reject(intent, self.preflight.fatal_code,
                                     f"executor not ready: {self.preflight.reason}")]
            raise TransientError(f"preflight not passed yet: {self.preflight.reason}")
        skew = self.preflight.clock_problem()
        if skew is not None:
            return [self._reject(intent, None, f"executor not ready: clock skew: {skew}")]
        why = check_intent(intent, self.preflight.specs.get(intent.instrument),
                           self.state.guard.closes.get(intent.instrument))
        if why is not None:
            return [self._reject(intent, None, f"not sent: {why}")]
        outcome = await self.placer.execute(intent, first=first_handling())
        if not outcome.accepted:
            if outcome.fatal:
                log.error("executor.venue_fatal", intent_id=intent.intent_id,
                          ret_code=outcome.ret_code, reason=outcome.reason)
            return [self._reject(intent, outcome.ret_code, f"venue: {outcome.reason}")]
        return self._reported(event, intent, outcome)

    def _reported(self, event: Envelope, intent: OrderApproved, outcome: Outcome) -> list[Emit]:
        order = outcome.order
        assert order is not None
        out = [Emit(self.out, OrderReported(
            intent_id=intent.intent_id, order_link_id=outcome.link_id, order_id=order.order_id,
            instrument=intent.instrument, status=order.status))]
        out += [Emit(self.out, fill_event(intent.intent_id, f)) for f in outcome.fills]
        g = self.state.guard
        if intent.intent_id not in g.counted:
            for f in outcome.fills:
                self._filled(intent.instrument, f.side, f.qty)
            g.counted = [*g.counted[-(COUNTED_INTENTS - 1):], intent.intent_id]
        self._count(intent.instrument, order.status, fills=len(outcome.fills), source="handler")
        for f in outcome.fills:
            self._value(intent.instrument, f.qty * f.price)
        if not outcome.settled:
            self.state.open[outcome.link_id] = OpenOrder(
                intent_id=intent.intent_id, link_id=outcome.link_id, order_id=order.order_id,
                instrument=intent.instrument, side=intent.side, qty=order.qty,
                status=order.status, correlation_id=event.correlation_id,
                ts_event_ns=event.ts_event_ns, filled=sum((f.qty for f in outcome.fills),
                                                          Decimal(0)),
                seen=[f.exec_id for f in outcome.fills])
        log.info("executor.order_reported", intent_id=intent.intent_id,
                 order_link_id=outcome.link_id, order_id=order.order_id, status=order.status,
                 fills=len(outcome.fills), placed=outcome.placed, attempts=outcome.attempts,
                 settled=outcome.settled, notes=list(outcome.notes))
        return out

    async def _funding(self, bar: BarClosed) -> list[Emit]:
        """Funding the venue settled on our position by this bar's close, as FundingSettled.

        Bybit books funding as executions of type ``Funding`` at every multiple of the
        instrument's funding interval (instruments-info ``fundingInterval``, read at the
        preflight and on each refresh; 8 h until read). Asked only on bars a funding time falls
        in, for the span :mod:`tm_executor.domain.funding` names (what was not published yet,
        in windows of at most 7 days), and as an output of the bar's handling, so a replay is
        deterministic: the venue's clock is at this bar's close before the bar is published."""
        close_ms = bar.close_time_ms + 1
        spec = self.preflight.specs.get(bar.instrument)
        interval_ms = spec.funding_interval_ms if spec else FUNDING_INTERVAL_MIN * 60_000
        if not settles_in_bar(bar.open_time_ms, close_ms, interval_ms):
            return []
        since = self.state.funding_ms.get(bar.instrument)
        start = span_start(since, self.state.funding_asked_ms.get(bar.instrument), close_ms)
        found = [r for lo, hi in windows(start, close_ms)
                 for r in await self.placer.venue.executions_of_type(bar.instrument, lo, hi,
                                                                     "Funding")]
        self.state.funding_asked_ms[bar.instrument] = close_ms
        rows = sorted((r for r in found if r.get("execType") == "Funding"),
                      key=lambda r: int(r["execTime"]))
        out = []
        for r in rows:
            t = int(r["execTime"])
            if since is not None and t <= since:
                continue
            qty = Decimal(r["execQty"]) * (1 if r["side"] == "Buy" else -1)
            out.append(Emit(self.out, FundingSettled(
                instrument=bar.instrument, settle_time_ms=t, rate=Decimal(r["feeRate"]),
                position_qty=qty, mark_price=Decimal(r["execPrice"]),
                payment=Decimal(r["execFee"])), ts_event_ns=t * 1_000_000))
            self.state.funding_ms[bar.instrument] = t
        return out

    async def _delivery(self, bar: BarClosed) -> list[Emit]:
        """The venue's close of our positions at a delisting, as ``OrderFilled`` events the
        portfolio books like any fill (its realised PnL; a position adopted by reconciliation
        would drop it).

        Bybit closes every position of a delisted perpetual at its ``deliveryTime`` (read from
        instruments-info at the preflight and on each refresh) with executions of type
        ``Delivery`` that belong to no order of ours. The first bar of any instrument closing
        at or after that time asks for them once (the delisted symbol may send no bar that
        late; the look-up is kept in the state, so a restart asks if it had not), as an output
        of the bar's handling so a replay is deterministic. Risk has normally closed the
        position a day before, so the answer is usually empty."""
        close_ms = bar.close_time_ms + 1
        out = []
        for sym, spec in sorted(self.preflight.specs.items()):
            at = spec.delivery_time_ms
            if not 0 < at <= close_ms or self.state.delivery_asked_ms.get(sym) == at:
                continue
            rows = [r for lo, hi in windows(at - DELIVERY_EARLY_MS, close_ms)
                    for r in await self.placer.venue.executions_of_type(sym, lo, hi,
                                                                        "Delivery")]
            self.state.delivery_asked_ms[sym] = at
            for r in sorted((r for r in rows if r.get("execType") == "Delivery"),
                            key=lambda r: (int(r["execTime"]), str(r["execId"]))):
                e = VenueExecution.from_bybit(r)
                self._filled(sym, e.side, e.qty)
                self._value(sym, e.qty * e.price)
                log.warning("executor.position_delivered", instrument=sym, side=e.side,
                            qty=str(e.qty), price=str(e.price))
                out.append(Emit(self.out, fill_event(f"delivery:{sym}:{at}", e),
                                ts_event_ns=e.exec_time_ms * 1_000_000,
                                correlation_id=f"delivery:{sym}"))
        return out

    def _label(self, instrument: str) -> str:
        """A metric label: the instrument if configured, else ``other`` (a forged intent's
        name must not grow the label set)."""
        return instrument if instrument in self.s.symbols else "other"

    def _reject(self, intent: OrderApproved, ret_code: int | None, reason: str) -> Emit:
        self._count(self._label(intent.instrument), "rejected")
        log.warning("executor.order_rejected", intent_id=intent.intent_id, ret_code=ret_code,
                    reason=reason)
        return Emit(self.out, OrderRejected(
            instrument=intent.instrument, bar_time_ms=intent.bar_time_ms, reason=reason,
            intent_id=intent.intent_id, source="executor", ret_code=ret_code))

    def _stop_fill(self, f: OrderFilled) -> list[Emit]:
        """A fill of the venue's stop loss (no intent of ours; :mod:`tm_executor.stops`),
        published once by its exec id so that the portfolio books the close. Stamped with the
        close of the bar before the one it happened in, as a flatten order caused between two
        closes is: the portfolio books it at once and the next snapshot shows the position
        closed, as the venue has it (stamped later, it would wait past that snapshot, and risk
        would size from a position the venue no longer holds)."""
        if f.exec_id in self.state.stop_fills:
            return []
        self.state.stop_fills = [*self.state.stop_fills[-(STOP_FILLS_KEPT - 1):], f.exec_id]
        self._filled(f.instrument, f.side, f.qty)
        self._count(self._label(f.instrument), None, fills=1, source="stop")
        self._value(self._label(f.instrument), f.qty * f.price)
        log.warning("executor.stop_fill_published", instrument=f.instrument, side=f.side,
                    qty=str(f.qty), price=str(f.price), exec_id=f.exec_id)
        interval_ms = self.s.interval_min * 60_000       # a time on a close: the bar it ends
        stamp_ms = (f.exec_time_ms - 1) // interval_ms * interval_ms
        return [Emit(self.out, f, ts_event_ns=stamp_ms * 1_000_000,
                     correlation_id=f"stop:{f.instrument}")]

    def _observed_fill(self, f: OrderFilled) -> list[Emit]:
        if f.intent_id.startswith(STOP_INTENT_PREFIX):
            return self._stop_fill(f)
        o = self.state.open.get(f.order_link_id)
        if o is None or f.exec_id in o.seen or f.order_id != o.order_id:
            return []
        o.seen.append(f.exec_id)
        o.filled += f.qty
        self._filled(o.instrument, f.side, f.qty)
        body = msgspec.structs.replace(f, intent_id=o.intent_id, instrument=o.instrument)
        self._count(o.instrument, None, fills=1, source="observed")
        self._value(o.instrument, f.qty * f.price)
        out = [Emit(self.out, body, ts_event_ns=o.ts_event_ns, correlation_id=o.correlation_id)]
        if o.filled >= o.qty:
            out += self._close(o, "Filled")
        return out

    def _observed_state(self, r: OrderReported) -> list[Emit]:
        o = self.state.open.get(r.order_link_id)
        if o is None or r.order_id != o.order_id:
            return []
        if r.status in TERMINAL_STATUSES:
            return self._close(o, r.status)
        o.status = r.status
        return []

    def _close(self, o: OpenOrder, status: str) -> list[Emit]:
        del self.state.open[o.link_id]
        self._count(o.instrument, status)
        log.info("executor.order_closed", intent_id=o.intent_id, order_id=o.order_id,
                 status=status, filled=str(o.filled))
        return [Emit(self.out, OrderReported(
            intent_id=o.intent_id, order_link_id=o.link_id, order_id=o.order_id,
            instrument=o.instrument, status=status), ts_event_ns=o.ts_event_ns,
            correlation_id=o.correlation_id)]

    def _count(self, instrument: str, status: str | None, *, fills: int = 0,
               source: str = "handler") -> None:
        if status is not None:
            self.counts[status] = self.counts.get(status, 0) + 1
        if self.metrics is None:
            return
        if status is not None:
            self.metrics.orders.labels(instrument, status).inc()
        if fills:
            self.metrics.fills.labels(instrument, source).inc(fills)

    def _value(self, instrument: str, notional: Decimal) -> None:
        if self.metrics is not None:
            self.metrics.fill(instrument, float(notional))

    def status(self) -> dict:
        g = self.state.guard
        return {"orders": dict(sorted(self.counts.items())), "open_orders": len(self.state.open),
                "busy": self.busy,
                "guard": {"breaker": g.breaker, "newest_bar_ms": g.newest_bar_ms,
                          "positions": {k: str(v) for k, v in sorted(g.positions.items())},
                          "refusals": dict(sorted(self.refusals.items()))}}
