"""Ingest wiring: settings → bus → source + publisher → runtime (no consumers: it is a source)."""

from __future__ import annotations

from tm_common.db import make_engine, resolve_database_url
from tm_common.db.migrate import migrate
from tm_common.service import ServiceRuntime, make_bus

from tm_ingest.config import IngestSettings
from tm_ingest.repository import MarketRepository
from tm_ingest.service import IngestService


def build_runtime(settings: IngestSettings) -> ServiceRuntime:
    bus = make_bus(settings)
    repo = None
    if settings.db_enabled:
        url = resolve_database_url(settings)
        migrate(url)
        repo = MarketRepository(make_engine(url))
    from tm_common.metrics import ServiceMetrics

    metrics = ServiceMetrics(settings.service_name, settings.version)
    svc = IngestService(settings, bus, repo=repo, registry=metrics.registry)

    runtime = ServiceRuntime(settings, bus, consumers=[], metrics=metrics,
                             ready_checks={"publisher_state": lambda: svc.started},
                             status_extra=svc.status, background=svc.background())
    return runtime
