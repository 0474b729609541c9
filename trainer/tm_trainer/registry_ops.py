"""Register a training result, promote it when its gates pass, publish ``model.promoted``.

A signal candidate needs forward evidence too (:func:`tm_trainer.promotion.auto_refusal`): one
fresh from training passed its gates on history only, so it stays a candidate "awaiting forward
evidence" until a shadow book has paper-traded it for the minimum of days
(``TM_PROMOTE_MIN_SHADOW_DAYS``, 28; 0 promotes on the gates alone). :func:`promote_ready`, which
``tm train`` runs first and ``tm models promote-ready`` alone, then promotes the newest such
candidate.

Publishing: the :class:`ModelPromoted` body goes to stream ``models.promoted`` through a
``RedisStreamsBus`` built like every service's (``tm_common.service.wiring.make_bus``: the
configured ``TM_REDIS_URL``, else the shared embedded Redis). A publish failure after a successful
promotion is reported, not raised: the registry is the record and services also read it on start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tm_common.bus.streams import MODELS_PROMOTED
from tm_common.events.base import Envelope
from tm_common.events.models import ModelPromoted
from tm_common.models.evidence import evidence_of
from tm_common.models.registry import ModelRegistry

from tm_trainer.pipeline import TrainResult
from tm_trainer.promotion import SHADOWED_KINDS, auto_evidence, auto_refusal, min_forward_days

Publisher = Callable[[ModelPromoted], Any]


@dataclass
class Outcome:
    """What happened to each kind: registered versions, promotions, and why not."""

    registered: list[str] = field(default_factory=list)
    promoted: list[ModelPromoted] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # "signal: kept <prod>: <why>"
    #: signal candidates whose gates passed, waiting for forward shadow evidence
    awaiting: list[str] = field(default_factory=list)
    min_forward_days: float = 0.0
    publish_errors: list[str] = field(default_factory=list)


def envelope(event: ModelPromoted, now_ns: int | None = None) -> Envelope:
    """Root envelope for a promotion; the id is unique per (version, previous, time)."""
    now = time.time_ns() if now_ns is None else now_ns
    return Envelope.root(event, key=f"{event.kind}:{event.version}:{event.previous_version}:{now}",
                         correlation_id=f"model:{event.kind}", ts_event_ns=now, ts_init_ns=now)


async def publish_redis(settings: Any, event: ModelPromoted) -> str:
    """Publish ``event`` on ``models.promoted`` (bus from ``settings``); returns the entry id."""
    from tm_common.service.wiring import make_bus

    bus = make_bus(settings)
    try:
        return await bus.publish(MODELS_PROMOTED, envelope(event))
    finally:
        await bus.close()


async def _publish(publish: Publisher | None, event: ModelPromoted, out: Outcome) -> None:
    if publish is None:
        return
    try:
        res = publish(event)
        if hasattr(res, "__await__"):
            await res
    except Exception as e:  # noqa: BLE001 - reported to the user; the registry already changed
        out.publish_errors.append(f"{event.kind} {event.version}: publish failed: {e}")


async def record(registry: ModelRegistry, result: TrainResult, *, promote: bool,
                 publish: Publisher | None = None,
                 min_days: float | None = None) -> Outcome:
    """Register the signal (and regime) candidates; promote those whose gates pass (a signal
    model: and whose forward evidence suffices, see the module).

    A failed gate keeps the current production model; the reasons are in the candidate's
    registry metrics (``why``, ``gate_reasons``) and in :attr:`Outcome.kept`.
    ``min_days``: the forward shadow days a signal model needs (None:
    :func:`tm_trainer.promotion.min_forward_days`).
    """
    out = Outcome(min_forward_days=min_forward_days(min_days))
    rec = await registry.register(
        "signal", result.signal_version, result.signal_bytes, data_hash=result.data_hash,
        features=result.features, params=result.params, seed=result.seed, metrics=result.metrics,
        parent_version=result.parent_version)
    out.registered.append(rec.version)
    await _decide(registry, "signal", rec.version, result.gate_passed, result.reasons, promote,
                  publish, out, reason="walk-forward gates passed")
    if result.regime is not None and result.regime["bytes"] is None:
        out.kept.append("regime: not registered: " + "; ".join(result.regime["reasons"]))
    elif result.regime is not None:
        r = result.regime
        reg = await registry.register(
            "regime", r["version"], r["bytes"], data_hash=result.data_hash,
            features={"observation": "[log return, log GARCH sigma]"}, params=r["params"],
            seed=result.seed, metrics={**r["metrics"], "why": "; ".join(r["reasons"]) or
                                       "sanity checks passed"})
        out.registered.append(reg.version)
        await _decide(registry, "regime", reg.version, r["ok"], r["reasons"], promote, publish, out,
                      reason="HMM sanity checks passed")
    return out


async def _decide(registry: ModelRegistry, kind: str, version: str, passed: bool,
                  reasons: list[str], promote: bool, publish: Publisher | None, out: Outcome, *,
                  reason: str) -> None:
    prod = await registry.production(kind)
    current = prod.version if prod else "none"
    if not passed:
        out.kept.append(f"{kind}: kept production {current}; {version} refused: " + "; ".join(reasons))
        return
    if not promote:
        out.kept.append(f"{kind}: kept production {current}; {version} passed but --no-promote")
        return
    if prod is not None and prod.version == version:
        out.kept.append(f"{kind}: {version} is already production")
        return
    evidence = None
    if kind in SHADOWED_KINDS:
        rec = await registry.get(version)
        assert rec is not None                       # registered just before
        ev = evidence_of(rec.version, rec.kind, rec.metrics)
        why = auto_refusal(ev, out.min_forward_days)
        if why is not None:
            out.awaiting.append(version)
            out.kept.append(f"{kind}: kept production {current}; {version} passed its gates and "
                            f"awaits forward evidence: {why}; shadow it (tm shadow --candidate "
                            f"{version}, or tm paper) and tm train promotes it once it has")
            return
        evidence = auto_evidence(ev, out.min_forward_days)
    event = await registry.promote(version, reason, evidence=evidence)
    out.promoted.append(event)
    await _publish(publish, event, out)


async def promote_ready(registry: ModelRegistry, *, publish: Publisher | None = None,
                        min_days: float | None = None) -> Outcome:
    """Promote the newest signal candidate, registered after the production model, whose gates
    passed and whose forward shadow evidence now suffices (:func:`auto_refusal`); the others
    that wait are listed in :attr:`Outcome.awaiting` with what they wait for. A candidate older
    than production is never promoted here (that would be a rollback)."""
    out = Outcome(min_forward_days=min_forward_days(min_days))
    for rec in await registry.awaiting_evidence("signal"):       # newest first
        ev = evidence_of(rec.version, rec.kind, rec.metrics)
        why = auto_refusal(ev, out.min_forward_days)
        if why is None:
            event = await registry.promote(
                rec.version, f"walk-forward gates passed and {ev.forward_days:.1f} forward "
                "shadow days", evidence=auto_evidence(ev, out.min_forward_days))
            out.promoted.append(event)
            await _publish(publish, event, out)
            return out
        out.awaiting.append(rec.version)
        out.kept.append(f"signal: {rec.version} awaits forward evidence: {why}")
    return out
