"""Ingest wiring: settings → bus → source + publisher → parts (no consumers: it is a source)."""

from __future__ import annotations

from tm_common.bus.protocol import Bus
from tm_common.db import make_engine, resolve_database_url
from tm_common.db.migrate import migrate
from tm_common.metrics import ServiceMetrics
from tm_common.service import WALL_CLOCK, Clock, ServiceParts, ServiceRuntime, make_bus

from tm_ingest.config import IngestSettings
from tm_ingest.repository import MarketRepository
from tm_ingest.service import IngestService


def build(settings: IngestSettings, *, bus: Bus, registry=None, venue=None,
          clock: Clock = WALL_CLOCK) -> ServiceParts:
    """The ingest service on ``bus`` (see :mod:`tm_common.service.parts`; no models).

    ``clock``: ``ts_init_ns`` of what is published. ``venue``: an in-process venue whose
    ``advance(bar_time_ms)`` a replay calls before each bar time (instead of
    ``replay_venue_url``). ``handlers["publisher"]`` is the exactly-once publisher, for a driver
    that replays itself; ``warmup`` loads its state."""
    repo = None
    if settings.db_enabled:
        url = resolve_database_url(settings)
        migrate(url)
        repo = MarketRepository(make_engine(url))
    metrics = ServiceMetrics(settings.service_name, settings.version)
    svc = IngestService(settings, bus, repo=repo, registry=metrics.registry, clock=clock,
                        venue=venue)
    return ServiceParts(settings, bus, handlers={"service": svc, "publisher": svc.publisher},
                        background=svc.background(), warmup=(svc.start,),
                        ready_checks={"publisher_state": lambda: svc.started},
                        status_extra=svc.status, metrics=metrics)


def build_runtime(settings: IngestSettings) -> ServiceRuntime:
    """The runtime of :func:`build` on a Redis bus (what ``python -m tm_ingest`` serves)."""
    return build(settings, bus=make_bus(settings)).runtime()
