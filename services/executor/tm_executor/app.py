"""Executor wiring: settings → venue client → preflight, handler, sources → runtime."""

from __future__ import annotations

from tm_common.bus.streams import MD_BAR, RISK_ORDER
from tm_common.metrics import ServiceMetrics
from tm_common.service import ServiceRuntime, make_bus, make_consumer

from tm_executor.config import EXEC_VENUE, ExecutorSettings
from tm_executor.fills import FillPoller, PrivateWsSource
from tm_executor.handler import ExecutorHandler
from tm_executor.metrics import ExecutorMetrics
from tm_executor.placement import OrderPlacer
from tm_executor.preflight import Preflight
from tm_executor.reconciler import Reconciler
from tm_executor.repository import ExecutorRepository
from tm_executor.venue import VenueClient


# md.bar: funding settled by each bar's close is published as FundingSettled (handler._funding).
INPUTS = (RISK_ORDER, EXEC_VENUE, MD_BAR)


class ExecutorService:
    """The parts, for the runtime and for tests that drive them directly."""

    def __init__(self, settings: ExecutorSettings, bus=None,
                 service_metrics: ServiceMetrics | None = None) -> None:
        self.settings = s = settings
        self.bus = bus if bus is not None else make_bus(s)
        self.service_metrics = service_metrics or ServiceMetrics(s.service_name, s.version)
        self.metrics = ExecutorMetrics(self.service_metrics.registry)
        self.venue = VenueClient(s, self.metrics)
        self.preflight = Preflight(self.venue, s, self.metrics)
        self.placer = OrderPlacer(self.venue, s)
        self.handler = ExecutorHandler(s, self.placer, self.preflight, self.metrics)
        self.repo = ExecutorRepository(self.bus)
        self.ws = PrivateWsSource(s, self.repo, self.handler.open_orders, self.metrics)
        self.poller = FillPoller(self.venue, self.repo, self.handler.open_orders, s)
        self.reconciler = Reconciler(self.venue, self.repo, self.handler, self.preflight, s,
                                     self.metrics)
        self.consumer = make_consumer(s, self.bus, self.handler, list(INPUTS))

    def status(self) -> dict:
        return {"venue": self.settings.bybit_rest_url, "symbols": list(self.settings.symbols),
                "preflight": self.preflight.status(), "handler": self.handler.status(),
                "venue_calls": self.venue.calls, "venue_errors": self.venue.errors,
                "order_history_lookup": self.venue.history_supported,
                "private_ws": self.ws.status(), "fill_poller": self.poller.status(),
                "reconciliation": self.reconciler.status()}

    def runtime(self) -> ServiceRuntime:
        return ServiceRuntime(
            self.settings, self.bus, consumers=[self.consumer], metrics=self.service_metrics,
            ready_checks={"preflight": self.preflight.check, "venue": self.preflight.check_venue},
            status_extra=self.status, lag_poll_interval_s=self.settings.lag_poll_interval_s,
            background={"preflight": self.preflight.run, "private_ws": self.ws.run,
                        "fill_poller": self.poller.run, "reconcile": self.reconciler.run})


def build_runtime(settings: ExecutorSettings) -> ServiceRuntime:
    return ExecutorService(settings).runtime()
