"""Shadow book wiring: settings → production's bus (read), the book's bus, the registry → book
→ parts (served like a service: ``/healthz``, ``/readyz``, ``/metrics``, ``/status``)."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Gauge
from tm_common.metrics import ServiceMetrics
from tm_common.service import WALL_CLOCK, Clock, ServiceParts

from tm_app.shadow.book import ShadowBook
from tm_app.shadow.config import ShadowSettings


class ShadowMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        r = metrics.registry
        self.bar_time = Gauge("tm_shadow_last_bar_time_seconds", "Open time of the newest bar "
                              "time the shadow book traded", registry=r)
        self.bar_times = Gauge("tm_shadow_bar_times", "Bar times traded by the shadow book "
                               "since it started", registry=r)
        self.days = Gauge("tm_shadow_evidence_days", "Bar-time span of this run's shadow record",
                          registry=r)
        self.ic = Gauge("tm_shadow_evidence_ic", "Realised IC of the candidate in this run",
                        registry=r)

    def update(self, book: ShadowBook) -> None:
        if book.last_bar_ms is not None:
            self.bar_time.set(book.last_bar_ms / 1000)
        self.bar_times.set(book.bar_times)
        if book.evidence is not None:
            self.days.set(book.evidence.days)
            self.ic.set(book.evidence.ic)


def build(settings: ShadowSettings, *, bus: Any, registry: Any = None, venue: Any = None,
          clock: Clock = WALL_CLOCK, source: Any = None) -> ServiceParts:
    """The shadow book on ``bus`` (its own namespace), reading ``source`` (production's
    namespace; default: a bus from ``settings``). ``venue`` must be None: a book makes its own
    paper account and takes no other."""
    from tm_common.db import make_engine, resolve_database_url
    from tm_common.db.migrate import migrate
    from tm_common.models.registry import ModelRegistry
    from tm_common.service.wiring import make_bus

    if venue is not None:
        raise ValueError("a shadow book trades only on its own in-process paper account")
    if registry is None:
        url = resolve_database_url(settings)
        migrate(url)
        registry = ModelRegistry(make_engine(url))
    book = ShadowBook(settings, bus=bus, source=source or make_bus(settings), registry=registry)
    metrics = ServiceMetrics(settings.service_name, settings.version)
    gauges = ShadowMetrics(metrics)

    async def run(stop: asyncio.Event) -> None:
        async def watch() -> None:
            while not stop.is_set():
                gauges.update(book)
                await asyncio.sleep(1.0)
        w = asyncio.create_task(watch())
        try:
            await book.run(stop)
        finally:
            w.cancel()
            gauges.update(book)

    return ServiceParts(
        settings=settings, bus=bus, handlers={"book": book}, background={"shadow": run},
        ready_checks={"candidate": lambda: book.venue is not None},
        status_extra=book.status, metrics=metrics)
