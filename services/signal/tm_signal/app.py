"""Signal wiring: settings → bus, database (registry, signals table, history) → handler →
consumer → parts. No logic here."""

from __future__ import annotations

import dataclasses

import structlog
from tm_common.bus.protocol import Bus
from tm_common.bus.streams import MD_BAR, MD_DVOL, MD_FUNDING, MODELS_PROMOTED
from tm_common.metrics import ServiceMetrics
from tm_common.service import WALL_CLOCK, Clock, ServiceParts, entry_points
from tm_common.service.serving import model_database, model_serving_parts

from tm_signal.config import SignalSettings
from tm_signal.domain.engine import EngineConfig, SignalEngine
from tm_signal.handler import SignalHandler
from tm_signal.metrics import SignalMetrics
from tm_signal.models import SignalModels
from tm_signal.repository import BarHistory, SignalRepository

log = structlog.get_logger("tm.signal")
INPUTS = (MD_BAR, MD_DVOL, MD_FUNDING, MODELS_PROMOTED)


def engine_config(s: SignalSettings) -> EngineConfig:
    return EngineConfig(symbols=s.symbols, btc_symbol=s.btc_symbol, ic_window=s.live_ic_window,
                        ic_min_pairs=s.live_ic_min_pairs, min_confidence=s.min_confidence,
                        ic_reset_on_reload=s.ic_reset_on_reload,
                        dvol_max_age_ms=round(s.dvol_max_age_s * 1000),
                        funding_max_age_ms=round(s.funding_max_age_s * 1000),
                        stale_confidence_fraction=s.stale_confidence_fraction)


def build_handler(settings: SignalSettings, metrics: ServiceMetrics,
                  registry=None) -> SignalHandler:
    """The handler. ``registry``: the model source; ``None`` = the database's registry (none
    with ``db_enabled`` off). Bar history reads the service's database, or else the given
    registry's (``registry.engine``); the signals table is written only with ``db_enabled``."""
    registry, db = model_database(settings, registry)
    repo = None if db is None else SignalRepository(db)
    history_db = db if db is not None else getattr(registry, "engine", None)
    return SignalHandler(SignalEngine(engine_config(settings)),
                         SignalModels(registry, compile_trees=settings.fast_inference),
                         history=BarHistory(history_db, settings.history_dir), repo=repo,
                         metrics=SignalMetrics(metrics.registry),
                         dvol_currency=settings.dvol_currency.upper(),
                         trade_start_ms=settings.trade_start_ms)


def build(settings: SignalSettings, *, bus: Bus, registry=None, venue=None,
          clock: Clock = WALL_CLOCK) -> ServiceParts:
    """The signal service on ``bus`` (see :mod:`tm_common.service.parts`; no venue)."""
    metrics = ServiceMetrics(settings.service_name, settings.version)
    handler = build_handler(settings, metrics, registry)
    # The table's rows are not lost for good when the flush is incomplete: signal.tl holds them.
    parts = model_serving_parts(settings, bus, handler, INPUTS, metrics=metrics, clock=clock,
                                event_prefix="signal", logger=log)
    # Stale DVOL/funding: /readyz names it (check "inputs"); the consumer keeps going.
    return dataclasses.replace(parts, ready_checks={**parts.ready_checks,
                                                    "inputs": handler.inputs_ready})


# build_runtime(settings): what ``python -m tm_signal`` serves; app_from_env(): for
# ``uvicorn --factory tm_signal.app:app_from_env``.
build_runtime, app_from_env = entry_points(build, SignalSettings)
