"""Sizer wiring: settings → bus, database (registry, targets table) → handler → consumer →
parts, plus the live join timer (:mod:`tm_sizer.commands`). No logic here."""

from __future__ import annotations

import asyncio
import time

import structlog
from tm_common.bus import streams
from tm_common.bus.protocol import Bus
from tm_common.metrics import ServiceMetrics
from tm_common.service import WALL_CLOCK, Clock, ServiceParts, entry_points, every
from tm_common.service.serving import model_database, model_serving_parts

from tm_sizer.commands import SIZER_COMMAND, flush_envelope
from tm_sizer.config import SizerSettings
from tm_sizer.domain.engine import SizerEngine
from tm_sizer.handler import SizerHandler
from tm_sizer.metrics import SizerMetrics
from tm_sizer.policies import SizerPolicies
from tm_sizer.repository import TargetRepository

log = structlog.get_logger("tm.sizer")
# md.bar first: a bar is published before the signal and regime it causes.
INPUTS = (streams.MD_BAR, streams.SIGNAL_TL, streams.REGIME_STATE, streams.RISK_BREAKER,
          streams.PORTFOLIO_SNAPSHOT, streams.MODELS_PROMOTED, SIZER_COMMAND)


def build_handler(settings: SizerSettings, metrics: ServiceMetrics,
                  registry=None) -> SizerHandler:
    """The handler. ``registry``: the policy source; ``None`` = the database's registry (none
    with ``db_enabled`` off). The targets table is written only with ``db_enabled``."""
    registry, db = model_database(settings, registry)
    repo = None if db is None else TargetRepository(db)
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
        async for _ in every(settings.join_check_interval_s, stop):
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
    timer = ({"join-timer": join_timer(settings, bus, handler, clock)}
             if settings.join_timer_enabled else {})
    return model_serving_parts(settings, bus, handler, INPUTS, metrics=metrics, clock=clock,
                               event_prefix="sizer", logger=log, kind="policy", background=timer)


# build_runtime(settings): what ``python -m tm_sizer`` serves; app_from_env(): for
# ``uvicorn --factory tm_sizer.app:app_from_env``.
build_runtime, app_from_env = entry_points(build, SizerSettings)
