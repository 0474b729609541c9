"""Regime wiring: settings → bus, database (registry, regimes table) → handler → consumer →
parts. No logic here."""

from __future__ import annotations

import structlog
from tm_common.bus.protocol import Bus
from tm_common.bus.streams import MD_BAR, MODELS_PROMOTED
from tm_common.metrics import ServiceMetrics
from tm_common.service import WALL_CLOCK, Clock, ServiceParts, entry_points
from tm_common.service.serving import model_database, model_serving_parts

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
    registry, db = model_database(settings, registry)
    repo = None if db is None else RegimeRepository(db)
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
    # The table's rows are not lost for good when the flush is incomplete: regime.state holds them.
    return model_serving_parts(settings, bus, handler, INPUTS, metrics=metrics, clock=clock,
                               event_prefix="regime", logger=log)


# build_runtime(settings): what ``python -m tm_regime`` serves; app_from_env(): for
# ``uvicorn --factory tm_regime.app:app_from_env``.
build_runtime, app_from_env = entry_points(build, RegimeSettings)
