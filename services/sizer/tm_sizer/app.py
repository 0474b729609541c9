"""Sizer wiring: settings → bus, database (registry, targets table) → handler → consumer →
parts, plus the live join timer (:mod:`tm_sizer.commands`). No logic here."""

from __future__ import annotations

import asyncio
import time

import structlog
from tm_common.bus.protocol import Bus
from tm_common.bus.streams import (
    MD_BAR,
    MODELS_PROMOTED,
    PORTFOLIO_SNAPSHOT,
    REGIME_STATE,
    RISK_BREAKER,
    SIGNAL_TL,
)
from tm_common.metrics import ServiceMetrics
from tm_common.service import (
    WALL_CLOCK,
    Clock,
    ServiceParts,
    ServiceRuntime,
    make_bus,
    make_consumer,
    retry_until_done,
    write_behind,
)

from tm_sizer.commands import SIZER_COMMAND, flush_envelope
from tm_sizer.config import SizerSettings
from tm_sizer.domain.engine import SizerEngine
from tm_sizer.handler import SizerHandler
from tm_sizer.metrics import SizerMetrics
from tm_sizer.policies import SizerPolicies
from tm_sizer.repository import TargetRepository

log = structlog.get_logger("tm.sizer")
# md.bar first: a bar is published before the signal and regime it causes.
INPUTS = (MD_BAR, SIGNAL_TL, REGIME_STATE, RISK_BREAKER, PORTFOLIO_SNAPSHOT, MODELS_PROMOTED,
          SIZER_COMMAND)


def build_handler(settings: SizerSettings, metrics: ServiceMetrics,
                  registry=None) -> SizerHandler:
    """The handler. ``registry``: the policy source; ``None`` = the database's registry (none
    with ``db_enabled`` off). The targets table is written only with ``db_enabled``."""
    repo = None
    if settings.db_enabled:
        from tm_common.db import make_engine, resolve_database_url
        from tm_common.db.migrate import migrate
        from tm_common.models.registry import ModelRegistry

        url = resolve_database_url(settings)
        migrate(url)
        db = make_engine(url)
        registry, repo = registry or ModelRegistry(db), TargetRepository(db)
    return SizerHandler(SizerEngine(settings.params()), SizerPolicies(registry), repo=repo,
                        metrics=SizerMetrics(metrics.registry))


def join_timer(settings: SizerSettings, bus: Bus, handler: SizerHandler,
               clock: Clock = WALL_CLOCK):
    """``async fn(stop)``: live only. Remembers (in monotonic time, outside the handler state)
    when each pending join was first seen and appends a flush command, stamped ``clock()`` ns,
    once it has waited ``join_timeout_s``."""
    async def run(stop: asyncio.Event) -> None:
        first_seen: dict[tuple[str, int], float] = {}
        flushed: set[tuple[str, int]] = set()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.join_check_interval_s)
                return
            except TimeoutError:
                pass
            now = time.monotonic()
            keys = set(handler.engine.pending_keys())
            for k in list(first_seen):
                if k not in keys:
                    first_seen.pop(k)
                    flushed.discard(k)
            for k in sorted(keys):
                waited = now - first_seen.setdefault(k, now)
                if waited >= settings.join_timeout_s and k not in flushed:
                    await bus.publish(SIZER_COMMAND, flush_envelope(
                        k[0], k[1], waited_s=round(waited, 3), now_ns=clock()))
                    flushed.add(k)
                    handler.metrics.flushes.inc()
                    log.warning("sizer.join_timeout", instrument=k[0], bar_time_ms=k[1],
                                waited_s=round(waited, 1))
    return run


def build(settings: SizerSettings, *, bus: Bus, registry=None, venue=None,
          clock: Clock = WALL_CLOCK) -> ServiceParts:
    """The sizer service on ``bus`` (see :mod:`tm_common.service.parts`; no venue). The live
    join timer runs in a live-time ``mode`` only (``settings.join_timer_enabled``)."""
    metrics = ServiceMetrics(settings.service_name, settings.version)
    handler = build_handler(settings, metrics, registry)
    consumer = make_consumer(settings, bus, handler, list(INPUTS), clock=clock)
    background = {"policy-prefetch": retry_until_done(
        handler.prefetch, retry_s=settings.model_prefetch_retry_s,
        failed_event="sizer.prefetch_failed", logger=log)}
    if settings.join_timer_enabled:
        background["join-timer"] = join_timer(settings, bus, handler, clock)
    if handler.repo is not None:
        background["db-writer"] = write_behind(handler.repo, logger=log,
                                               incomplete_event="sizer.db_flush_incomplete")
    return ServiceParts(settings, bus, consumers=(consumer,), handlers={"handler": handler},
                        background=background, warmup=(handler.prefetch,),
                        ready_checks={"policy": handler.ready}, status_extra=handler.status,
                        metrics=metrics, lag_poll_interval_s=settings.lag_poll_interval_s)


def build_runtime(settings: SizerSettings) -> ServiceRuntime:
    """The runtime of :func:`build` on a Redis bus (what ``python -m tm_sizer`` serves)."""
    return build(settings, bus=make_bus(settings)).runtime()


def app_from_env():
    """For ``uvicorn --factory tm_sizer.app:app_from_env``."""
    from tm_common.service import parts_app

    settings = SizerSettings()
    return parts_app(build(settings, bus=make_bus(settings)))
