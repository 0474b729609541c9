"""Regime wiring: settings → bus, database (registry, regimes table) → handler → consumer →
parts. No logic here."""

from __future__ import annotations

import structlog
from tm_common.bus.protocol import Bus
from tm_common.bus.streams import MD_BAR, MODELS_PROMOTED
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

from tm_regime.config import RegimeSettings
from tm_regime.domain.engine import RegimeConfig, RegimeEngine
from tm_regime.handler import RegimeHandler
from tm_regime.metrics import RegimeMetrics
from tm_regime.models import RegimeModels
from tm_regime.repository import RegimeRepository

log = structlog.get_logger("tm.regime")
INPUTS = (MD_BAR, MODELS_PROMOTED)


def build_handler(settings: RegimeSettings, metrics: ServiceMetrics,
                  registry=None) -> RegimeHandler:
    """The handler. ``registry``: the model source; ``None`` = the database's registry (none
    with ``db_enabled`` off). The regimes table is written only with ``db_enabled``."""
    repo = None
    if settings.db_enabled:
        from tm_common.db import make_engine, resolve_database_url
        from tm_common.db.migrate import migrate
        from tm_common.models.registry import ModelRegistry

        url = resolve_database_url(settings)
        migrate(url)
        db = make_engine(url)
        registry, repo = registry or ModelRegistry(db), RegimeRepository(db)
    engine = RegimeEngine(RegimeConfig(symbols=settings.symbols,
                                       no_model_kelly=settings.no_model_kelly,
                                       replay_bars=settings.replay_bars))
    return RegimeHandler(engine, RegimeModels(registry), repo=repo,
                         metrics=RegimeMetrics(metrics.registry))


def build(settings: RegimeSettings, *, bus: Bus, registry=None, venue=None,
          clock: Clock = WALL_CLOCK) -> ServiceParts:
    """The regime service on ``bus`` (see :mod:`tm_common.service.parts`; no venue)."""
    metrics = ServiceMetrics(settings.service_name, settings.version)
    handler = build_handler(settings, metrics, registry)
    consumer = make_consumer(settings, bus, handler, list(INPUTS), clock=clock)
    background = {"model-prefetch": retry_until_done(
        handler.prefetch, retry_s=settings.model_prefetch_retry_s,
        failed_event="regime.prefetch_failed", logger=log)}
    if handler.repo is not None:
        # Not lost for good when the flush is incomplete: regime.state holds the same events.
        background["db-writer"] = write_behind(handler.repo, logger=log,
                                               incomplete_event="regime.db_flush_incomplete")
    return ServiceParts(settings, bus, consumers=(consumer,), handlers={"handler": handler},
                        background=background, warmup=(handler.prefetch,),
                        ready_checks={"model": handler.ready}, status_extra=handler.status,
                        metrics=metrics, lag_poll_interval_s=settings.lag_poll_interval_s)


def build_runtime(settings: RegimeSettings) -> ServiceRuntime:
    """The runtime of :func:`build` on a Redis bus (what ``python -m tm_regime`` serves)."""
    return build(settings, bus=make_bus(settings)).runtime()


def app_from_env():
    """For ``uvicorn --factory tm_regime.app:app_from_env``."""
    from tm_common.service import parts_app

    settings = RegimeSettings()
    return parts_app(build(settings, bus=make_bus(settings)))
