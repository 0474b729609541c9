"""What the risk handler emits and records: breaker transitions (each a ``risk.breaker``
event, the flatten orders of a transition to OPEN, an audit row for a loss-limit trip), approved
orders on ``risk.order``, and the audit outbox. :class:`RiskOutputs` is the base of
:class:`tm_risk.handler.RiskHandler`: it holds no state of its own, only the handler's params,
state, observer and audit sink.

Audit: every kill, manual trip, reset and loss-limit trip becomes an audit row
(:mod:`tm_common.audit`): kept in the state's ``audit_outbox`` (committed with the ack) and
queued on the audit writer, and dropped from the outbox once the writer reports it written, so
a row survives both a database outage and a crash.

Flatten orders caused between two closes (an intra-bar trip, an operator's kill or trip: a
command carries wall time) carry, as ``ts_event_ns``, the close of the bar they are labelled
with (the newest bar seen), as every bar-close order does: the executor stamps their fills with
it, so the portfolio books them at once and the next snapshot shows the book flat (stamped with
the trigger's time, the fills would be deferred past that snapshot, which would then show the
old positions and make risk flatten them a second time).
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from tm_common.audit import AuditEntry, audit_id
from tm_common.bus.handler import Emit
from tm_common.bus.streams import RISK_BREAKER, RISK_ORDER
from tm_common.events import BreakerStateChanged, Envelope, OrderApproved, deterministic_id

from tm_risk.domain import breaker as brk
from tm_risk.domain.breaker import State, Transition, Trigger
from tm_risk.domain.decision import ApprovedOrder, flatten_orders
from tm_risk.domain.params import RiskParams
from tm_risk.domain.state import RiskState
from tm_risk.metrics import RiskObserver

log = structlog.get_logger("tm.risk")
NS_PER_MS = 1_000_000
_LIMITS = (Trigger.DAILY_LOSS, Trigger.CUMULATIVE_LOSS)
MAX_OUTBOX = 1000


class AuditSink(Protocol):
    """Where the handler's audit rows go (``tm_common.audit.AuditWriter`` has this shape)."""

    written_ids: set[str]

    def record(self, entries: list[dict[str, Any]]) -> None: ...


class RiskOutputs:
    """The output half of :class:`tm_risk.handler.RiskHandler` (which sets these attributes)."""

    params: RiskParams
    obs: RiskObserver
    audit: AuditSink | None
    state: RiskState

    def _clock(self, ev: Envelope, now_ms: int, out: list[Emit], wall_ms: int | None = None) -> None:
        """Clock triggers at event time ``now_ms``; stale data on the market-data clock (the
        latest bar end seen), or at ``wall_ms`` for a watchdog tick (see the breaker module)."""
        s, p = self.state, self.params
        s.advance_clock(now_ms)
        data_now = max(s.last_bar_end_ms.values(), default=0)
        if wall_ms is not None:
            data_now = max(data_now, wall_ms)
        s.breaker, trans = brk.on_clock(s.breaker, s.clock_ms,
                                        p.bar_feeds(s.last_bar_end_ms, data_now), p.interval_ms,
                                        p.breaker, data_now)
        self._transitions(ev, trans, out)

    def _transitions(self, ev: Envelope, trans: list[Transition], out: list[Emit],
                     stamp_bar_close: bool = False) -> None:
        for t in trans:
            index = len(out)
            out.append(Emit(RISK_BREAKER, BreakerStateChanged(
                from_state=t.from_state.value, to_state=t.to_state.value, trigger=t.trigger.value,
                reason=t.reason, at_ms=t.at_ms)))
            self.obs.transition(t)
            self.obs.hold(self.state.breaker.hold)
            if t.trigger in _LIMITS:
                self._audit([AuditEntry(
                    audit_id=audit_id("limit_trip", ev.event_id, index), at_ms=t.at_ms,
                    kind="limit_trip", what=f"breaker {t.from_state.value} -> "
                    f"{t.to_state.value} ({t.trigger.value} limit)", why=t.reason,
                    who="risk (automatic)", source="risk", event_id=ev.event_id)])
            log.info("risk.breaker_transition", from_state=t.from_state.value,
                     to_state=t.to_state.value, trigger=t.trigger.value, reason=t.reason,
                     at_ms=t.at_ms)
            if t.to_state == State.OPEN:
                event_id = deterministic_id(ev.event_id, index, BreakerStateChanged.TYPE)
                orders, intended = flatten_orders(self.state, self.params, event_id,
                                                  f"breaker OPEN ({t.trigger.value}): flatten")
                self._emit_orders(orders, intended, out, stamp_bar_close)

    def _audit(self, entries: list[AuditEntry]) -> None:
        """Keep ``entries`` in the state's outbox and queue them on the writer (no writer, as in
        the backtest and the component tests: nothing is kept, the state stays deterministic)."""
        if self.audit is None:
            return
        rows = [e.row() for e in entries]
        outbox = self.state.audit_outbox
        outbox.extend(rows)
        if len(outbox) > MAX_OUTBOX:
            log.error("risk.audit_outbox_full", dropped=len(outbox) - MAX_OUTBOX)
            del outbox[:len(outbox) - MAX_OUTBOX]
        self.audit.record(rows)

    def _prune_outbox(self) -> None:
        """Drop the outbox rows the writer has written (they are in the database)."""
        if self.audit is not None and self.state.audit_outbox:
            done = self.audit.written_ids
            self.state.audit_outbox = [r for r in self.state.audit_outbox
                                       if r["audit_id"] not in done]

    def _emit_orders(self, orders: list[ApprovedOrder], intended, out: list[Emit],
                     stamp_bar_close: bool = False) -> None:
        """``stamp_bar_close``: each order's ``ts_event_ns`` is its bar's close (intra-bar
        flattens, see the module docstring); otherwise the input's event time."""
        for o in orders:
            leg = o.leg
            ts = (o.bar_time_ms + self.params.interval_ms) * NS_PER_MS if stamp_bar_close else None
            out.append(Emit(RISK_ORDER, OrderApproved(
                intent_id=o.intent_id, instrument=o.instrument, bar_time_ms=o.bar_time_ms,
                side=leg.side, qty=leg.qty, reduce_only=leg.reduce_only,
                target_qty=leg.position_after, reason=o.reason), ts_event_ns=ts,
                correlation_id=f"{o.instrument}:{o.bar_time_ms}"))
            self.obs.approved(o.instrument, leg.kind)
        bars = {o.instrument: o.bar_time_ms for o in orders}
        for inst, qty in intended.items():
            self.state.set_intended(inst, qty, bars.get(inst, self.state.snapshot_bar_ms or 0))
