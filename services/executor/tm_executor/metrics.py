"""The executor's own Prometheus metrics (``tm_executor_*``), on the service's registry.

Label values are bounded: ``endpoint`` is one of the venue calls the client makes, ``ret_code``
a Bybit retCode, ``http_<status>`` or ``network``, ``status`` an order status or ``rejected``,
``source`` ``handler`` (with the intent), ``observed`` (WebSocket/poller, later) or ``stop``
(the venue's stop loss, :mod:`tm_executor.stops`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# 0.5 ms .. 30 s: a local sim answers in ~2 ms, Bybit in ~20-200 ms, a timeout in seconds.
EXCHANGE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                      2.5, 5.0, 10.0, 30.0)


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *,
                 large_fill_usdt: float = 50_000.0) -> None:
        self.large_fill_usdt = large_fill_usdt
        r = registry or CollectorRegistry()
        self.orders = Counter("tm_executor_orders_total",
                              "Intents that ended, by instrument and final status "
                              "(venue order status, or rejected).",
                              ("instrument", "status"), registry=r)
        self.exchange_latency = Histogram("tm_executor_exchange_latency_seconds",
                                          "Venue call round trip (pybit → venue → pybit), s.",
                                          ("endpoint",), buckets=EXCHANGE_BUCKETS_S, registry=r)
        self.exchange_errors = Counter("tm_executor_exchange_errors_total",
                                       "Failed venue calls by endpoint and retCode "
                                       "(or http_<status>, network).",
                                       ("endpoint", "ret_code"), registry=r)
        self.fills = Counter("tm_executor_fills_total", "Fills published to exec.report.",
                             ("instrument", "source"), registry=r)
        self.fill_notional = Counter("tm_executor_fill_notional_usdt_total", "Traded value of "
                                     "the fills published (qty x price), USDT.", ("instrument",),
                                     registry=r)
        self.large_fills = Counter("tm_executor_large_fills_total", "Fills whose value is at "
                                   "least TM_EXECUTOR_LARGE_FILL_NOTIONAL_USDT.", ("instrument",),
                                   registry=r)
        self.reconcile_diffs = Counter("tm_executor_reconciliation_differences_total",
                                       "Positions that differed from the portfolio's view "
                                       "and were published as PositionReconciled.",
                                       ("instrument",), registry=r)
        self.reconcile_runs = Counter("tm_executor_reconciliation_runs_total",
                                      "Reconciliation runs by result (ok, differences, "
                                      "skipped, error).", ("result",), registry=r)
        self.balance_flows = Counter("tm_executor_balance_reconciliations_total",
                                     "Wallet differences adopted as external flows "
                                     "(BalanceReconciled), by direction (in, out).",
                                     ("direction",), registry=r)
        self.balance_flow_usdt = Counter("tm_executor_balance_reconciled_usdt_total",
                                         "Size of the wallet differences adopted, USDT.",
                                         ("direction",), registry=r)
        for d in ("in", "out"):
            self.balance_flows.labels(d)
            self.balance_flow_usdt.labels(d)
        self.foreign_positions = Gauge("tm_executor_foreign_positions",
                                       "1 per open position in a symbol the executor does not "
                                       "trade (not in TM_SYMBOLS): a warning, not reconciled.",
                                       ("instrument",), registry=r)
        self.clock_offset = Gauge("tm_executor_clock_offset_seconds",
                                  "Venue clock minus host clock, measured from /v5/market/time "
                                  "(signed requests are corrected by it), s.", registry=r)
        self.ip_ban_silence = Gauge("tm_executor_ip_ban_silence_seconds",
                                    "Seconds left of the silence after an HTTP 403 (IP ban): "
                                    "no venue request is sent while > 0.", registry=r)
        self.preflight_passed = Gauge("tm_executor_preflight_passed",
                                      "1 once the start-up preflight passed.", registry=r)
        self.ws_connected = Gauge("tm_executor_private_ws_connected",
                                  "1 while the private WebSocket is authenticated.", registry=r)
        self.venue_info = Gauge("tm_executor_venue_info",
                                "1 for the venue the executor trades on (simulator, testnet, "
                                "mainnet) and the TM_LIVE_TRADING mode that allows it.",
                                ("venue", "mode"), registry=r)
        self.guard_refusals = Counter("tm_executor_guard_refusals_total",
                                      "Intents the executor's guard refused (never sent), by "
                                      "instrument (other = not configured) and rule "
                                      "(breaker_open, stale, no_price, order_qty, "
                                      "order_notional, position_qty, position_notional).",
                                      ("instrument", "rule"), registry=r)
        self.breaker_state = Gauge("tm_executor_breaker_state",
                                   "The breaker as the executor last saw it on risk.breaker "
                                   "(0 CLOSED, 1 HALF_OPEN, 2 OPEN).", registry=r)
        self.open_orders = Gauge("tm_executor_open_orders",
                                 "Orders placed and not yet terminal (their fills are awaited).",
                                 registry=r)
        self.stop_updates = Counter("tm_executor_venue_stop_updates_total",
                                    "Venue stop-loss calls by instrument and result (set, "
                                    "cancelled, refused, error).", ("instrument", "result"),
                                    registry=r)
        self.unprotected = Gauge("tm_executor_unprotected_positions",
                                 "1 per open position in a traded symbol that lacks the venue "
                                 "stop loss it should carry (TM_EXECUTOR_VENUE_STOP_LOSS > 0).",
                                 ("instrument",), registry=r)

    def set_breaker(self, state: str) -> None:
        self.breaker_state.set(BREAKER_LEVELS.get(state, 0))

    def fill(self, instrument: str, notional: float) -> None:
        """One published fill of value ``notional`` (USDT)."""
        self.fill_notional.labels(instrument).inc(notional)
        if notional >= self.large_fill_usdt:
            self.large_fills.labels(instrument).inc()


BREAKER_LEVELS = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}
