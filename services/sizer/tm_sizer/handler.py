"""Inputs → :class:`SizerEngine` → ``sizing.target``.

Consumes ``signal.tl`` (SignalGenerated), ``regime.state`` (RegimeDetected), ``md.bar``
(BarClosed), ``risk.breaker`` (BreakerStateChanged), ``portfolio.snapshot``
(PortfolioSnapshotted), ``models.promoted`` (ModelPromoted of kind ``rl``) and ``sizer.command``
(JoinFlushRequested). Publishes one ``PositionSized`` per instrument and bar, with its tier,
reason, RL and Kelly fractions, regime, ``regime_stale`` and the policy version.

State and restarts: the engine's state (joins, paper books, win/loss outcomes, breaker, equity,
policy version) is the handler snapshot, saved by the consumer in the same transaction as the
outputs and the ack. A restart restores it and re-attaches the policy *of that version*.

Policy: with no snapshot (first start) the registry's production ``rl`` policy is loaded on the
first event (none → the Kelly tiers only). A ``model.promoted`` of kind ``rl`` is handled between
two inputs like any event: the new bundle is loaded (numpy) and used from the next decision; the
swap commits atomically with the promotion's ack. A promoted policy whose gate failed is loaded
but never used (the cascade sees no passed policy).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog
from tm_common.bus.handler import Emit
from tm_common.bus.streams import SIZING_TARGET
from tm_common.errors import NotReady
from tm_common.events import (
    BarClosed,
    BreakerStateChanged,
    Envelope,
    ModelPromoted,
    PortfolioSnapshotted,
    PositionSized,
    RegimeDetected,
    SignalGenerated,
    deterministic_id,
)
from tm_common.models.cache import NOT_CHECKED_YET
from tm_common.models.lifecycle import ModelLifecycle

from tm_sizer.commands import JoinFlushRequested
from tm_sizer.domain.engine import RegimeIn, Result, SignalIn, SizedOut, SizerEngine
from tm_sizer.domain.policy import KIND, RLPolicy
from tm_sizer.metrics import BREAKER_CODE, SizerMetrics
from tm_sizer.policies import SizerPolicies
from tm_sizer.repository import TargetRepository

log = structlog.get_logger("tm.sizer")


class SizerHandler(ModelLifecycle[RLPolicy]):
    """A ``StatefulHandler``. ``repo`` None = no table writes; ``interval_min``: bars of other
    intervals are ignored. The policy life cycle (first start, restart, promotion) is
    :class:`~tm_common.models.lifecycle.ModelLifecycle`'s; the engine holds it as ``policy``."""

    service, thing = "sizer", "policy"
    # State on every commit: msgspec is ~10x faster than json.dumps; keys sorted, byte-stable.
    _state_json = msgspec.json.Encoder(order="sorted")

    def __init__(self, engine: SizerEngine, policies: SizerPolicies, *,
                 repo: TargetRepository | None = None, metrics: SizerMetrics | None = None,
                 out_stream: str = SIZING_TARGET, interval_min: int = 240) -> None:
        self.engine, self.policies, self.repo = engine, policies, repo
        self.models = policies          # ModelLifecycle's name for it
        self.metrics = metrics or SizerMetrics()
        if repo is not None:   # read at each scrape: back to 0 once the writer caught up
            self.metrics.db_backlog.set_function(lambda: repo.backlog)
        self.out_stream, self.interval_min = out_stream, interval_min
        self._cold_start = True

    # -- events ----------------------------------------------------------------------------
    async def handle(self, event: Envelope) -> Sequence[Emit]:
        await self._ensure_model()
        b = event.body
        e = self.engine
        t0 = time.perf_counter()
        res = Result()
        if isinstance(b, SignalGenerated):
            res = e.on_signal(SignalIn(b.instrument, b.bar_time_ms, int(b.direction),
                                       float(b.probability), float(b.confidence), b.live_ic,
                                       event.ts_event_ns, live_ic_n=int(b.live_ic_n)))
        elif isinstance(b, RegimeDetected):
            res = e.on_regime(RegimeIn(b.instrument, b.bar_time_ms, b.label,
                                       tuple(float(x) for x in b.probabilities),  # type: ignore[arg-type]
                                       float(b.volatility)))
        elif isinstance(b, BarClosed):
            if b.interval_min == self.interval_min:
                res = e.on_bar(b.instrument, b.open_time_ms, float(b.close))
        elif isinstance(b, BreakerStateChanged):
            e.on_breaker(b.to_state, event.ts_event_ns)
            self.metrics.breaker.set(BREAKER_CODE.get(b.to_state, 0))
        elif isinstance(b, PortfolioSnapshotted):
            e.on_portfolio(b.bar_time_ms, str(b.equity), float(b.drawdown))
        elif isinstance(b, ModelPromoted):
            if b.kind == KIND:
                await self._promote(b.version, b.reason)
        elif isinstance(b, JoinFlushRequested):
            res = e.flush(b.instrument, b.bar_time_ms, "timeout")
        secs = time.perf_counter() - t0
        return self._emit(event, res, secs)

    def _emit(self, event: Envelope, res: Result, secs: float) -> list[Emit]:
        inst = getattr(event.body, "instrument", "")
        for n in res.notes:
            self.metrics.note(inst, n)
        emits, rows = [], []
        for i, o in enumerate(res.outs):
            body = to_event(o)
            emits.append(Emit(self.out_stream, body, ts_event_ns=o.ts_event_ns,
                              correlation_id=o.correlation_id))
            tier = o.decision.tier
            self.metrics.decisions.labels(tier, o.instrument).inc()
            self.metrics.decision_seconds.labels(tier).observe(secs / len(res.outs))
            self.metrics.target.labels(o.instrument).set(o.decision.target_fraction)
            rows.append(row(o, deterministic_id(event.event_id, i, PositionSized.TYPE)))
            log.info("sizer.sized", instrument=o.instrument, bar_time_ms=o.bar_time_ms, tier=tier,
                     target=o.decision.target_fraction, regime_stale=o.regime_stale)
        self.metrics.pending.set(len(self.engine.pending_keys()))
        if self.repo is not None and rows:
            self.repo.save(rows)
        return emits

    # -- policy ----------------------------------------------------------------------------
    def _current(self) -> tuple[str, RLPolicy | None]:
        return self.engine.policy_version, self.engine.policy

    def _attach(self, model: RLPolicy) -> None:
        self.engine.policy = model

    def _set_model(self, model: RLPolicy | None) -> None:
        self.engine.set_policy(model)

    def _show_model(self) -> None:
        pol = self.engine.policy
        self.metrics.set_policy(self.engine.policy_version, pol is not None and pol.usable)

    async def _model_swapped(self, model: RLPolicy | None) -> dict[str, Any]:
        return {} if model is None else {"usable": model.usable, "rl_sharpe": model.rl_sharpe,
                                         "kelly_sharpe": model.kelly_sharpe}

    # -- readiness and status ----------------------------------------------------------------
    def ready(self) -> bool:
        """Ready once the registry answered (no policy is fine: the Kelly tiers work without
        one); else raises :class:`NotReady` with the reason (``/readyz`` shows it)."""
        p = self.policies
        if self.engine.policy is not None:
            return True
        if p.last_error:
            raise NotReady(p.last_error)
        if p.source is not None and self._cold_start and not p.production_checked:
            raise NotReady(NOT_CHECKED_YET)
        return True

    def status(self) -> dict[str, Any]:
        e = self.engine
        pol = e.policy
        return {
            "policy": None if pol is None else {
                "version": pol.version, "usable": pol.usable, "rl_sharpe": pol.rl_sharpe,
                "kelly_sharpe": pol.kelly_sharpe, "max_fraction": pol.max_fraction},
            "policy_version": e.policy_version or None,
            "production_version": self.policies.production_version,
            "policy_error": self.policies.last_error,
            "breaker_state": e.breaker_state, "equity": e.equity,
            "portfolio_drawdown": e.portfolio_drawdown, "snapshot_bar_ms": e.snapshot_bar_ms,
            "pending_joins": [f"{i}:{t}" for i, t in e.pending_keys()],
            "instruments": {s: {"last_decided_ms": st.last_decided_ms,
                                "position": st.book.position,
                                "paper_drawdown": st.book.drawdown,
                                "outcomes": len(st.outcomes)} for s, st in sorted(e.inst.items())},
            "db": None if self.repo is None else self.repo.status(),
        }


def to_event(o: SizedOut) -> PositionSized:
    d = o.decision
    return PositionSized(instrument=o.instrument, bar_time_ms=o.bar_time_ms,
                         target_fraction=d.target_fraction, tier=d.tier, reason=d.reason,
                         rl_fraction=d.rl_fraction, kelly_fraction=d.kelly_fraction,
                         regime=o.regime, regime_stale=o.regime_stale,  # type: ignore[arg-type]
                         policy_version=o.policy_version)


def row(o: SizedOut, event_id: str) -> dict:
    """A ``targets`` table row."""
    d = o.decision
    return {"instrument": o.instrument, "bar_time_ms": o.bar_time_ms,
            "target_fraction": d.target_fraction, "tier": d.tier, "reason": d.reason,
            "rl_fraction": d.rl_fraction, "kelly_fraction": d.kelly_fraction, "regime": o.regime,
            "regime_stale": o.regime_stale, "policy_version": o.policy_version,
            "event_id": event_id}
