"""Signal wiring: settings → bus, database (registry, signals table, history) → handler →
consumer → runtime. No logic here."""

from __future__ import annotations

import asyncio

import structlog
from tm_common.bus.streams import MD_BAR, MD_DVOL, MODELS_PROMOTED
from tm_common.errors import TransientError
from tm_common.metrics import ServiceMetrics
from tm_common.service import ServiceRuntime, make_bus, make_consumer

from tm_signal.config import SignalSettings
from tm_signal.domain.engine import EngineConfig, SignalEngine
from tm_signal.handler import SignalHandler
from tm_signal.metrics import SignalMetrics
from tm_signal.models import SignalModels
from tm_signal.repository import BarHistory, SignalRepository

log = structlog.get_logger("tm.signal")


def engine_config(s: SignalSettings) -> EngineConfig:
    return EngineConfig(symbols=s.symbols, btc_symbol=s.btc_symbol, ic_window=s.live_ic_window,
                        ic_min_pairs=s.live_ic_min_pairs, min_confidence=s.min_confidence,
                        ic_reset_on_reload=s.ic_reset_on_reload)


def build_handler(settings: SignalSettings, metrics: ServiceMetrics) -> SignalHandler:
    registry = repo = db = None
    if settings.db_enabled:
        from tm_common.db import make_engine, resolve_database_url
        from tm_common.db.migrate import migrate
        from tm_common.models.registry import ModelRegistry

        url = resolve_database_url(settings)
        migrate(url)
        db = make_engine(url)
        registry, repo = ModelRegistry(db), SignalRepository(db)
    return SignalHandler(SignalEngine(engine_config(settings)), SignalModels(registry, compile_trees=settings.fast_inference),
                         history=BarHistory(db, settings.history_dir), repo=repo,
                         metrics=SignalMetrics(metrics.registry),
                         dvol_currency=settings.dvol_currency.upper())


def build_runtime(settings: SignalSettings) -> ServiceRuntime:
    bus = make_bus(settings)
    metrics = ServiceMetrics(settings.service_name, settings.version)
    handler = build_handler(settings, metrics)
    consumer = make_consumer(settings, bus, handler, [MD_BAR, MD_DVOL, MODELS_PROMOTED])

    async def prefetch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await handler.prefetch()
                return
            except TransientError as e:
                log.warning("signal.prefetch_failed", error=str(e))
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
                # The rows are not lost for good: signal.tl holds the same events.
                log.warning("signal.db_flush_incomplete", backlog=repo.backlog)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        background["db-writer"] = db_writer
    return ServiceRuntime(settings, bus, consumers=[consumer], metrics=metrics,
                          ready_checks={"model": handler.ready}, status_extra=handler.status,
                          background=background, lag_poll_interval_s=settings.lag_poll_interval_s)


def app_from_env():
    """For ``uvicorn --factory tm_signal.app:app_from_env``."""
    from tm_common.service import create_app

    return create_app(build_runtime(SignalSettings()))
