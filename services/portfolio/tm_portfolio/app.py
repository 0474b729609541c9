"""Portfolio wiring: settings → bus, repository, metrics, handler, consumer → parts."""

from __future__ import annotations

import structlog
from tm_common.bus.protocol import Bus
from tm_common.bus.streams import EXEC_REPORT, MD_BAR, MD_MARK
from tm_common.db import make_engine, resolve_database_url
from tm_common.db.migrate import migrate_async
from tm_common.metrics import ServiceMetrics
from tm_common.service import WALL_CLOCK, Clock, ServiceParts, ServiceRuntime, make_bus, make_consumer
from tm_common.service.parts import ServiceAssembly
from tm_common.service.tasks import write_behind

from tm_portfolio.config import PortfolioSettings
from tm_portfolio.handler import PortfolioHandler
from tm_portfolio.metrics import PortfolioMetrics
from tm_portfolio.repository import PortfolioRepository

log = structlog.get_logger("tm.portfolio")

# exec.report first: when both streams have entries in one read, fills (of earlier decisions)
# are handled before newer bars; the book defers any effect that is early (domain/book.py).
# md.mark: intra-bar marks (live only), valued on portfolio.valuation; never in a snapshot.
INPUTS = (EXEC_REPORT, MD_BAR, MD_MARK)


class PortfolioService(ServiceAssembly):
    """The parts, for the runtime and for tests that drive them directly."""

    def __init__(self, settings: PortfolioSettings, bus=None,
                 service_metrics: ServiceMetrics | None = None, *,
                 clock: Clock = WALL_CLOCK) -> None:
        super().__init__(settings, bus, service_metrics)
        s = settings
        self.metrics = PortfolioMetrics(self.service_metrics.registry)
        self.repo: PortfolioRepository | None = None
        if s.db_enabled:
            url = resolve_database_url(s)
            self.repo = PortfolioRepository(
                make_engine(url), prepare=lambda: migrate_async(url),
                max_backlog=s.db_max_backlog,
                on_change=self._db_changed)
        self.handler = PortfolioHandler(
            s.symbols, s.initial_equity, periods_per_year=s.periods_per_year,
            interval_ms=s.interval_min * 60_000, sink=self.repo, observer=self.metrics)
        self.consumer = make_consumer(s, self.bus, self.handler, list(INPUTS), clock=clock)

    def _db_changed(self) -> None:
        if self.repo is not None:
            self.metrics.db(self.repo.backlog, self.repo.failures, self.repo.dropped)

    def status(self) -> dict:
        doc = {"symbols": list(self.settings.symbols),
               "initial_equity": str(self.settings.initial_equity), **self.handler.status()}
        if self.repo is not None:
            doc["db"] = self.repo.status()
        return doc

    def parts(self) -> ServiceParts:
        # Stopped, the writer has 3 s to land its backlog; what is left is logged (the rows are
        # not lost for good: exec.report and portfolio.snapshot hold the same events).
        background = {} if self.repo is None else {"db-writer": write_behind(
            self.repo, incomplete_event="portfolio.db_unflushed", flush_timeout_s=3.0, logger=log)}
        return ServiceParts(self.settings, self.bus, consumers=(self.consumer,),
                            handlers={"handler": self.handler}, background=background,
                            status_extra=self.status, metrics=self.service_metrics,
                            lag_poll_interval_s=self.settings.lag_poll_interval_s)


def build(settings: PortfolioSettings, *, bus: Bus, registry=None, venue=None,
          clock: Clock = WALL_CLOCK) -> ServiceParts:
    """The portfolio service on ``bus`` (see :mod:`tm_common.service.parts`; no models, no
    venue). Rows are written only with ``db_enabled``."""
    return PortfolioService(settings, bus, clock=clock).parts()


def build_runtime(settings: PortfolioSettings) -> ServiceRuntime:
    """The runtime of :func:`build` on a Redis bus (what ``python -m tm_portfolio`` serves)."""
    return build(settings, bus=make_bus(settings)).runtime()
