"""Regime wiring: settings → bus, database (registry, regimes table) → handler → consumer →
runtime. No logic here."""

from __future__ import annotations

import asyncio

import structlog
from tm_common.bus.streams import MD_BAR, MODELS_PROMOTED
from tm_common.errors import TransientError
from tm_common.metrics import ServiceMetrics
from tm_common.service import ServiceRuntime, make_bus, make_consumer

from tm_regime.config import RegimeSettings
from tm_regime.domain.engine import RegimeConfig, RegimeEngine
from tm_regime.handler import RegimeHandler
from tm_regime.metrics import RegimeMetrics
from tm_regime.models import RegimeModels
from tm_regime.repository import RegimeRepository

log = structlog.get_logger("tm.regime")


def build_handler(settings: RegimeSettings, metrics: ServiceMetrics) -> RegimeHandler:
    registry = repo = None
    if settings.db_enabled:
        from tm_common.db import make_engine, resolve_database_url
        from tm_common.db.migrate import migrate
        from tm_common.models.registry import ModelRegistry

        url = resolve_database_url(settings)
        migrate(url)
        db = make_engine(url)
        registry, repo = ModelRegistry(db), RegimeRepository(db)
    engine = RegimeEngine(RegimeConfig(symbols=settings.symbols,
                                       no_model_kelly=settings.no_model_kelly,
                                       replay_bars=settings.replay_bars))
    return RegimeHandler(engine, RegimeModels(registry), repo=repo,
                         metrics=RegimeMetrics(metrics.registry))


def build_runtime(settings: RegimeSettings) -> ServiceRuntime:
    bus = make_bus(settings)
    metrics = ServiceMetrics(settings.service_name, settings.version)
    handler = build_handler(settings, metrics)
    consumer = make_consumer(settings, bus, handler, [MD_BAR, MODELS_PROMOTED])

    async def prefetch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await handler.prefetch()
                return
            except TransientError as e:
                log.warning("regime.prefetch_failed", error=str(e))
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.model_prefetch_retry_s)
            except TimeoutError:
                pass

    background = {"model-prefetch": prefetch}
    if handler.repo is not None:
        repo = handler.repo

        async def db_writer(stop: asyncio.Event) -> None:
            task = asyncio.create_task(repo.run())
            await stop.wait()
            if not await repo.flush(timeout_s=5.0):
                # Not lost for good: regime.state holds the same events.
                log.warning("regime.db_flush_incomplete", backlog=repo.backlog)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        background["db-writer"] = db_writer
    return ServiceRuntime(settings, bus, consumers=[consumer], metrics=metrics,
                          ready_checks={"model": handler.ready}, status_extra=handler.status,
                          background=background, lag_poll_interval_s=settings.lag_poll_interval_s)


def app_from_env():
    """For ``uvicorn --factory tm_regime.app:app_from_env``."""
    from tm_common.service import create_app

    return create_app(build_runtime(RegimeSettings()))
