"""Sizer wiring: settings → bus, database (registry, targets table) → handler → consumer →
runtime, plus the live join timer (:mod:`tm_sizer.commands`). No logic here."""

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
from tm_common.errors import TransientError
from tm_common.metrics import ServiceMetrics
from tm_common.service import ServiceRuntime, make_bus, make_consumer

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


def build_handler(settings: SizerSettings, metrics: ServiceMetrics) -> SizerHandler:
    registry = repo = None
    if settings.db_enabled:
        from tm_common.db import make_engine, resolve_database_url
        from tm_common.db.migrate import migrate
        from tm_common.models.registry import ModelRegistry

        url = resolve_database_url(settings)
        migrate(url)
        db = make_engine(url)
        registry, repo = ModelRegistry(db), TargetRepository(db)
    return SizerHandler(SizerEngine(settings.params()), SizerPolicies(registry), repo=repo,
                        metrics=SizerMetrics(metrics.registry))


def join_timer(settings: SizerSettings, bus: Bus, handler: SizerHandler):
    """``async fn(stop)``: live only. Remembers (in wall time, outside the handler state) when
    each pending join was first seen and appends a flush command once it has waited
    ``join_timeout_s``."""
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
                        k[0], k[1], waited_s=round(waited, 3), now_ns=time.time_ns()))
                    flushed.add(k)
                    handler.metrics.flushes.inc()
                    log.warning("sizer.join_timeout", instrument=k[0], bar_time_ms=k[1],
                                waited_s=round(waited, 1))
    return run


def build_runtime(settings: SizerSettings) -> ServiceRuntime:
    bus = make_bus(settings)
    metrics = ServiceMetrics(settings.service_name, settings.version)
    handler = build_handler(settings, metrics)
    consumer = make_consumer(settings, bus, handler, list(INPUTS))

    async def prefetch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await handler.prefetch()
                return
            except TransientError as e:
                log.warning("sizer.prefetch_failed", error=str(e))
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.model_prefetch_retry_s)
            except TimeoutError:
                pass

    background = {"policy-prefetch": prefetch}
    if settings.join_timer_enabled:
        background["join-timer"] = join_timer(settings, bus, handler)
    if handler.repo is not None:
        repo = handler.repo

        async def db_writer(stop: asyncio.Event) -> None:
            task = asyncio.create_task(repo.run())
            await stop.wait()
            if not await repo.flush(timeout_s=5.0):
                log.warning("sizer.db_flush_incomplete", backlog=repo.backlog)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        background["db-writer"] = db_writer
    return ServiceRuntime(settings, bus, consumers=[consumer], metrics=metrics,
                          ready_checks={"policy": handler.ready}, status_extra=handler.status,
                          background=background, lag_poll_interval_s=settings.lag_poll_interval_s)


def app_from_env():
    """For ``uvicorn --factory tm_sizer.app:app_from_env``."""
    from tm_common.service import create_app

    return create_app(build_runtime(SizerSettings()))
