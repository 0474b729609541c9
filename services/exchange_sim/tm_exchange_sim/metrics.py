"""Prometheus metrics of the sim, in a registry of its own (several apps per test process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)


class SimMetrics:
    def __init__(self, service: str = "exchange-sim", version: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.build_info = Gauge("tm_build_info", "Always 1; the labels say what is running.",
                                ["service", "version"], registry=self.registry)
        self.build_info.labels(service=service, version=version).set(1)
        self.requests = Counter("tm_exchange_sim_requests_total", "REST requests by path and "
                                "retCode", ["path", "ret_code"], registry=self.registry)
        self.latency = Histogram("tm_exchange_sim_request_seconds", "REST handling time",
                                 ["path"], registry=self.registry)
        self.faults = Counter("tm_exchange_sim_faults_injected_total", "injected faults",
                              ["kind"], registry=self.registry)
        self.orders = Counter("tm_exchange_sim_orders_total", "orders accepted",
                              ["symbol", "order_type"], registry=self.registry)
        self.stop_losses = Counter("tm_exchange_sim_stop_losses_triggered_total",
                                   "position stop losses triggered (the venue closed the "
                                   "position)", ["symbol"], registry=self.registry)
        self.transfers = Counter("tm_exchange_sim_transfers_total", "USDT transfers taken into "
                                 "(in) or out of (out) the wallet", ["direction"],
                                 registry=self.registry)
        self.clock = Gauge("tm_exchange_sim_clock_timestamp_seconds",
                           "Replay clock: open time of the latest closed bar (unix seconds)",
                           registry=self.registry)
        self.ws_connections = Gauge("tm_exchange_sim_ws_connections", "open WebSockets",
                                    ["channel"], registry=self.registry)
        self.ws_messages = Counter("tm_exchange_sim_ws_messages_total", "WebSocket pushes",
                                   ["channel"], registry=self.registry)

    def set_clock(self, clock_ms: int) -> None:
        self.clock.set(clock_ms / 1000)
