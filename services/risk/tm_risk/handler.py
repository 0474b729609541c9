"""The risk handler: events in → domain rules → ``risk.order`` / ``risk.rejection`` /
``risk.breaker`` out. Deterministic: decisions depend only on the state and the events.

Consumes ``sizing.target`` (PositionSized), ``portfolio.snapshot`` (PortfolioSnapshotted),
``portfolio.valuation`` (PortfolioValued: intra-bar, live only), ``md.bar`` (BarClosed), ``exec.report`` (OrderRejected with source ``executor`` counts a failure;
OrderReported with retCode 0 and OrderFilled reset the count) and ``risk.command``
(:mod:`tm_risk.commands`). The clock is the event time: the largest ``ts_event_ns`` seen, never
the wall clock (only a ``tick`` command carries wall time, from the live watchdog). Stale data is
judged on the market-data clock, the latest bar end seen on ``md.bar``, so that the order in which
the consumer interleaves its streams cannot fake a silent feed.

Loss limits (:mod:`tm_risk.domain.loss_limits`): every snapshot moves the daily and cumulative
baselines (never a breaker transition) and a breach trips the breaker with its own trigger. A
``kill`` command (``tm kill``) trips it from any state with the hold ``kill``; only a ``reset``
lifts a hold; a reset of a loss-limit hold rebases that limit's baseline with the reset's reason.

Lot filters: the venue's, set through :meth:`RiskHandler.set_instruments` (loaded at start and
refreshed by :mod:`tm_risk.instruments`, and from ``InstrumentsChanged`` on ``exec.report``, which
the executor publishes when its daily instruments-info refresh finds a change). They are not
part of the saved state: a restart loads the venue's current ones. Until every traded symbol has
one, every input is refused with :class:`~tm_common.errors.NotReady` (transient: redelivered, not
counted against the delivery cap), so nothing is decided on guessed filters.

Intra-bar protection: a valuation (the portfolio's book at the newest ticker marks, between two
bar closes) newer than both the last snapshot's close and the last valuation applied is checked
against the loss limits and the drawdown (:func:`tm_risk.domain.breaker.on_mark`); a breach
trips the breaker then, with its reason, and the transition flattens like any other. A
valuation moves no baseline, peak or snapshot field (except for a new external-flow total,
which a snapshot would bring as well: :mod:`tm_risk.domain.flows`); it advances the event clock.

On every transition to OPEN the handler emits reduce-only orders that flatten every expected
position; their intent ids derive from the id of the ``BreakerStateChanged`` event (computed as the
consumer will: ``deterministic_id(input_id, output_index, type)``). While OPEN, every snapshot that
shows a residual position (a flatten that failed or was partial) flattens it again. What is
emitted and recorded (breaker events, flatten and approved orders, audit rows) is
:mod:`tm_risk.outputs`.

Join (``params.join_targets``, on in the service): the targets of bar t are held in the state
until every symbol's target of t and the portfolio snapshot of t are in, then decided in symbol
order, so that the decisions do not depend on the order in which the mesh delivers its inputs
(a restarted service, a slow hop). A bar or snapshot of a later bar, or a watchdog tick
``join_timeout_ms`` after t's close, decides an incomplete set; a target older than the last
decided bar is refused as stale.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace

import structlog
from tm_common.audit import AuditEntry, audit_id
from tm_common.bus.handler import Emit
from tm_common.bus.streams import RISK_REJECTION
from tm_common.errors import NotReady
from tm_common.events import (
    BarClosed,
    Envelope,
    InstrumentsChanged,
    OrderFilled,
    OrderRejected,
    OrderReported,
    PortfolioSnapshotted,
    PortfolioValued,
    PositionSized,
)
from tm_common.instruments import DELISTED_STATUSES, TRADING, spec_changes
from tm_common.timefmt import utc_minute

from tm_risk.commands import BreakerCommandIssued
from tm_risk.domain import breaker as brk
from tm_risk.domain import loss_limits as ll
from tm_risk.domain.breaker import State, Trigger
from tm_risk.domain.decision import decide_target, flatten_orders
from tm_risk.domain.flows import on_transfers
from tm_risk.domain.params import LotFilter, RiskParams
from tm_risk.domain.state import RiskState
from tm_risk.metrics import RiskObserver
from tm_risk.outputs import NS_PER_MS, AuditSink, RiskOutputs

log = structlog.get_logger("tm.risk")
_MANUAL = {"trip": Trigger.MANUAL_TRIP, "reset": Trigger.MANUAL_RESET, "kill": Trigger.KILL}
_AUDIT_KIND = {"trip": "breaker_trip", "reset": "breaker_reset", "kill": "kill"}


class RiskHandler(RiskOutputs):
    """A ``StatefulHandler``; ``state`` is a :class:`RiskState`, snapshotted as JSON.

    ``command_results``: command id → outcome of the last commands applied in this process (for
    the admin endpoint's answer; not part of the state)."""

    def __init__(self, params: RiskParams, observer: RiskObserver | None = None,
                 audit: AuditSink | None = None) -> None:
        self.params = params
        self.obs = observer or RiskObserver()
        self.audit = audit
        self.state = RiskState()
        self.command_results: OrderedDict[str, dict] = OrderedDict()
        self.instruments_source = "parameters" if params.instruments else "none yet"

    # -- the venue's lot filters -----------------------------------------------------------
    def set_instruments(self, specs: Mapping[str, LotFilter], source: str) -> dict[str, str]:
        """Use ``specs`` (symbol → the venue's filters; other symbols ignored) from now on;
        returns what changed per traded symbol (:func:`tm_common.instruments.spec_changes`). A
        traded symbol missing from ``specs`` keeps the filters it had."""
        p = self.params
        changed = spec_changes(p.instruments, specs, symbols=p.symbols)
        keep = {s: specs[s] for s in p.symbols if s in specs}
        self.params = replace(p, instruments={**p.instruments, **keep})
        self.instruments_source = source
        for sym, what in changed.items():
            log.info("risk.instruments_changed", instrument=sym, change=what, source=source)
            self.obs.instruments_changed(sym, self.params.instruments[sym])
            if at_ms := self.params.instruments[sym].delivery_time_ms:
                log.warning("risk.delisting_scheduled", instrument=sym,
                            at=f"{utc_minute(at_ms)} UTC", source=source,
                            flat_from=f"{utc_minute(at_ms - self.params.delisting_lead_ms)} UTC")
            if (status := self.params.instruments[sym].status) != TRADING:
                log.warning("risk.instrument_not_trading", instrument=sym, status=status,
                            source=source, target="flat" if status in DELISTED_STATUSES
                            else "no new exposure")
        if missing := self.params.missing_instruments():
            log.error("risk.instruments_missing", instruments=missing, source=source)
        return changed

    def instruments_ready(self) -> tuple[bool, str]:
        """The readiness check: every traded symbol has the venue's filters."""
        missing = self.params.missing_instruments()
        if missing:
            return False, (f"no lot filters for {', '.join(missing)} from "
                           f"{self.instruments_source}")
        return True, f"{len(self.params.symbols)} from {self.instruments_source}"

    # -- StatefulHandler -------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return self.state.to_json()

    def restore(self, data: bytes | None) -> None:
        self.state = RiskState.from_json(data)
        self.obs.breaker_state(self.state.breaker.state)
        self.obs.hold(self.state.breaker.hold)
        if self.audit is not None and self.state.audit_outbox:
            self.audit.record(list(self.state.audit_outbox))   # rows not confirmed before

    async def handle(self, event: Envelope) -> Sequence[Emit]:
        return self.process(event)

    def process(self, event: Envelope) -> list[Emit]:
        """Handle one event synchronously (the bus calls :meth:`handle`)."""
        if isinstance(event.body, InstrumentsChanged):      # the executor saw the venue change
            self.set_instruments({f.symbol: f for f in event.body.instruments},
                                 f"event from {event.body.source}")
            return []
        ok, why = self.instruments_ready()
        if not ok:
            raise NotReady(why)
        out: list[Emit] = []
        body = event.body
        now_ms = event.ts_event_ns // NS_PER_MS
        self._prune_outbox()
        if isinstance(body, PositionSized):
            self._clock(event, now_ms, out)
            if self.params.join_targets:
                self._join(body, out)
            else:
                self._on_target(body.instrument, body.bar_time_ms, body.target_fraction, body.tier,
                                out)
        elif isinstance(body, PortfolioSnapshotted):
            self._on_snapshot(event, body, now_ms, out)
        elif isinstance(body, PortfolioValued):
            self._on_valuation(event, body, now_ms, out)
        elif isinstance(body, BarClosed):
            self._on_bar(event, body, now_ms, out)
        elif isinstance(body, OrderRejected):
            if body.source == "executor":
                self.state.forget_intended(body.instrument)   # that order will not fill
                self._exec_result(event, True, now_ms, body.reason, out)
        elif isinstance(body, OrderFilled) or (isinstance(body, OrderReported) and body.ret_code == 0):
            self._exec_result(event, False, now_ms, "", out)
        elif isinstance(body, BreakerCommandIssued):
            self._on_command(event, body, out)
        return out

    # -- inputs ----------------------------------------------------------------------------
    def _on_bar(self, ev: Envelope, bar: BarClosed, now_ms: int, out: list[Emit]) -> None:
        p, s = self.params, self.state
        if bar.interval_min * 60_000 != p.interval_ms:
            return
        if s.joining and bar.instrument in p.symbols:
            self._flush(out, force_before=bar.open_time_ms)   # bar t+1 is here: t is complete
        if bar.instrument in p.symbols:
            i = bar.instrument
            if bar.open_time_ms >= s.last_bar_open_ms.get(i, -1):
                s.last_bar_open_ms[i] = bar.open_time_ms
                s.last_bar_end_ms[i] = bar.close_time_ms + 1
                s.last_close[i] = bar.close
            s.add_close(i, bar.open_time_ms, float(bar.close), keep=p.window_bars + 1)
        self._clock(ev, now_ms, out)

    def _on_snapshot(self, ev: Envelope, snap: PortfolioSnapshotted, now_ms: int,
                     out: list[Emit]) -> None:
        s = self.state
        s.advance_clock(now_ms)
        if s.joining:
            self._flush(out, force_before=snap.bar_time_ms)   # decided on the state they waited on
        if s.snapshot_bar_ms is None or snap.bar_time_ms >= s.snapshot_bar_ms:
            on_transfers(s, snap.transfers)
            s.equity, s.snapshot_bar_ms = snap.equity, snap.bar_time_ms
            s.positions = {p.instrument: p.qty for p in snap.positions if p.qty != 0}
            s.marks = {p.instrument: p.mark_price for p in snap.positions}
            for inst in list(s.intended):
                if snap.bar_time_ms > s.order_bar_ms.get(inst, snap.bar_time_ms):
                    s.forget_intended(inst)     # the orders of earlier bars are in this snapshot
            bp = self.params.breaker
            s.losses = ll.on_equity(s.losses, snap.equity, now_ms)
            breach = ll.breach(s.losses, snap.equity, bp.daily_loss_limit,
                               bp.cumulative_loss_limit)
            s.breaker, trans = brk.on_snapshot(s.breaker, snap.equity, snap.bar_time_ms, s.clock_ms,
                                               bp, breach)
            self.obs.drawdown(brk.drawdown(snap.equity, s.breaker.peak_equity))
            self.obs.losses(ll.loss(snap.equity, s.losses.day_start_equity),
                            ll.loss(snap.equity, s.losses.baseline_equity))
            self._transitions(ev, trans, out)
            if s.breaker.state == State.OPEN:
                orders, intended = flatten_orders(s, self.params, ev.event_id,
                                                  "breaker OPEN: flatten residual position")
                self._emit_orders(orders, intended, out)
        if s.joining:
            self._flush(out)
        self._clock(ev, s.clock_ms, out)

    def _on_valuation(self, ev: Envelope, val: PortfolioValued, now_ms: int,
                      out: list[Emit]) -> None:
        s, p = self.state, self.params
        s.advance_clock(now_ms)
        if s.snapshot_bar_ms is None:
            self.obs.valuation("no_snapshot")
            return
        if val.at_ms <= s.snapshot_bar_ms + p.interval_ms or \
                (s.valuation_ms is not None and val.at_ms <= s.valuation_ms):
            self.obs.valuation("stale")      # the snapshot or an applied valuation is newer
            return
        on_transfers(s, val.transfers)
        s.valuation_ms, s.valuation_equity = val.at_ms, val.equity
        bp = p.breaker
        breach = ll.intrabar_breach(s.losses, val.equity, val.at_ms, bp.daily_loss_limit,
                                    bp.cumulative_loss_limit)
        s.breaker, trans = brk.on_mark(s.breaker, val.equity, s.clock_ms, bp, breach)
        self.obs.valuation("applied", val.at_ms)
        self.obs.drawdown(brk.drawdown(val.equity, s.breaker.peak_equity))
        self.obs.losses(ll.loss(val.equity, s.losses.day_start_equity),
                        ll.loss(val.equity, s.losses.baseline_equity))
        self._transitions(ev, trans, out, stamp_bar_close=True)

    def _join(self, ps: PositionSized, out: list[Emit]) -> None:
        s, t, inst = self.state, ps.bar_time_ms, ps.instrument
        if s.decided_bar_ms is not None and t < s.decided_bar_ms:
            self._reject(out, inst, t, "stale_target",
                         f"target of bar {t} arrived after bar {s.decided_bar_ms} was decided")
        elif t == s.decided_bar_ms:
            s.decided = tuple(sorted({*s.decided, inst}))
            self._on_target(inst, t, ps.target_fraction, ps.tier, out)   # late: decided alone
        else:
            s.joining.setdefault(t, {})[inst] = (ps.target_fraction, ps.tier)
            self._flush(out)

    def _flush(self, out: list[Emit], force_before: int | None = None) -> None:
        """Decide, oldest bar first, every joined set that is complete (all symbols whose bars
        have not ended by its close, and the snapshot of its bar) or older than
        ``force_before``; stop at the first that is neither."""
        s, p = self.state, self.params
        for t in sorted(s.joining):
            got = s.joining[t]
            due = {i for i in p.symbols if not p.ended(i, t + p.interval_ms)}
            complete = due <= got.keys() and (s.snapshot_bar_ms or -1) >= t
            if not complete and (force_before is None or t >= force_before):
                return
            del s.joining[t]
            s.decided_bar_ms, s.decided = t, tuple(sorted(got))
            for inst in sorted(got, key=lambda i: (i not in p.symbols, p.symbols.index(i)
                                                   if i in p.symbols else 0, i)):
                f, tier = got[inst]
                self._on_target(inst, t, f, tier, out)

    def _reject(self, out: list[Emit], instrument: str, bar_time_ms: int, code: str,
                reason: str) -> None:
        out.append(Emit(RISK_REJECTION, OrderRejected(
            instrument=instrument, bar_time_ms=bar_time_ms, reason=reason, source="risk"),
            correlation_id=f"{instrument}:{bar_time_ms}"))
        self.obs.rejected(code)

    def _on_target(self, instrument: str, bar_time_ms: int, fraction: float, tier: str,
                   out: list[Emit]) -> None:
        t0 = time.perf_counter()
        d = decide_target(self.state, self.params, instrument, bar_time_ms, fraction, tier)
        self._emit_orders(list(d.orders), d.intended, out)
        if d.rejection is not None:
            r = d.rejection
            self._reject(out, r.instrument, r.bar_time_ms, r.code, r.reason)
        if d.var is not None:
            self.obs.var(d.var)
        self.obs.decision(d.code, time.perf_counter() - t0)

    def _exec_result(self, ev: Envelope, rejected: bool, now_ms: int, reason: str,
                     out: list[Emit]) -> None:
        s = self.state
        s.advance_clock(now_ms)
        s.breaker, trans = brk.on_exec_result(s.breaker, rejected, s.clock_ms, reason,
                                              self.params.breaker)
        self.obs.exec_failures(s.breaker.failures)
        self._transitions(ev, trans, out)

    def _on_command(self, ev: Envelope, cmd: BreakerCommandIssued, out: list[Emit]) -> None:
        s = self.state
        before = s.breaker.state
        if cmd.action == "tick":
            self._clock(ev, cmd.observed_at_ms, out, wall_ms=cmd.observed_at_ms)
            p = self.params
            late = [t for t in s.joining
                    if cmd.observed_at_ms >= t + p.interval_ms + p.join_timeout_ms]
            if late:
                self._flush(out, force_before=max(late) + 1)
            applied, detail = True, "clock checked"
        elif cmd.action in ("kill", "reset") and not cmd.reason.strip():
            applied, detail = False, f"a {cmd.action} needs a reason"
        elif brk.can_fire(before, _MANUAL[cmd.action]):
            reason = f"{cmd.action} by {cmd.issued_by}" + (f": {cmd.reason}" if cmd.reason else "")
            hold = s.breaker.hold
            s.breaker, t = brk.fire(s.breaker, _MANUAL[cmd.action], reason, s.clock_ms)
            what = f"breaker {t.from_state.value} -> {t.to_state.value} ({cmd.action})"
            if cmd.action == "reset" and hold in ("daily_loss", "cumulative_loss") \
                    and s.equity is not None:
                s.losses = ll.rebase(s.losses, s.equity, s.clock_ms, cmd.reason,
                                     cumulative=hold == "cumulative_loss",
                                     daily=hold == "daily_loss")
                what += f"; {hold} baseline rebased to {s.equity} USDT"
            elif hold:
                what += f"; hold {hold} lifted" if cmd.action == "reset" else ""
            self._audit([AuditEntry(
                audit_id=audit_id(_AUDIT_KIND[cmd.action], ev.event_id),
                at_ms=cmd.observed_at_ms or s.clock_ms, kind=_AUDIT_KIND[cmd.action], what=what,
                why=cmd.reason, who=cmd.issued_by, source="risk", event_id=ev.event_id)])
            self._transitions(ev, [t], out, stamp_bar_close=True)   # a command's time is wall time
            applied, detail = True, reason
        else:
            applied, detail = False, f"{cmd.action} is not allowed in state {before.value}"
            log.warning("risk.command_ignored", command_id=cmd.command_id, action=cmd.action,
                        state=before.value)
        self.command_results[cmd.command_id] = {"applied": applied, "from_state": before.value,
                                                "state": s.breaker.state.value, "detail": detail}
        while len(self.command_results) > 256:
            self.command_results.popitem(last=False)
