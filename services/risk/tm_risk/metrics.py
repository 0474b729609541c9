"""Risk metrics (``tm_risk_*``) and the observer interface the handler reports to.

The handler calls a :class:`RiskObserver` (no-op by default, so tests and the backtest need no
Prometheus); :class:`RiskMetrics` is the Prometheus implementation on the service's registry.
Label values are bounded: instrument (configured symbols), order kind, rejection code, breaker
state and trigger names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tm_common.instruments import TRADING

from tm_risk.domain.breaker import HOLD_RANK, STATE_CODE, State, Transition
from tm_risk.domain.params import LotFilter
from tm_risk.domain.var import VarResult

# 10 µs .. 100 ms: a decision is ~0.1-1 ms (HRP + VaR on 180 bars).
DECISION_BUCKETS_S = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
                      5e-2, 0.1)


class RiskObserver:
    """What the handler reports. Every method is a no-op here."""

    def decision(self, code: str, secs: float) -> None: ...
    def approved(self, instrument: str, kind: str) -> None: ...
    def rejected(self, code: str) -> None: ...
    def var(self, result: VarResult) -> None: ...
    def breaker_state(self, state: State) -> None: ...
    def transition(self, t: Transition) -> None: ...
    def drawdown(self, ratio: float) -> None: ...
    def exec_failures(self, n: int) -> None: ...
    def losses(self, daily: float, cumulative: float) -> None: ...
    def hold(self, hold: str) -> None: ...
    def valuation(self, result: str, at_ms: int | None = None) -> None: ...
    def instruments_changed(self, instrument: str, spec: LotFilter) -> None: ...


class RiskMetrics(RiskObserver):
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.state = Gauge("tm_risk_breaker_state",
                           "Circuit breaker state: 0 CLOSED, 1 HALF_OPEN, 2 OPEN.", registry=r)
        self.transitions = Counter("tm_risk_breaker_transitions_total",
                                   "Breaker transitions.", ("from_state", "to_state", "trigger"),
                                   registry=r)
        self.approved_total = Counter("tm_risk_orders_approved_total", "Orders approved.",
                                      ("instrument", "kind"), registry=r)
        self.rejected_total = Counter("tm_risk_orders_rejected_total",
                                      "Targets rejected or skipped, by reason code.", ("reason",),
                                      registry=r)
        self.decisions = Histogram("tm_risk_decision_duration_seconds",
                                   "Time to decide one sized target (rules only), seconds.",
                                   ("outcome",), buckets=DECISION_BUCKETS_S, registry=r)
        self.var_ratio = Gauge("tm_risk_var_ratio",
                               "1-day 99% VaR of the last decided portfolio, fraction of equity.",
                               ("method",), registry=r)
        self.drawdown_ratio = Gauge("tm_risk_drawdown_ratio",
                                    "Drawdown from the breaker's peak equity (0..1).", registry=r)
        self.failures = Gauge("tm_risk_exec_failures", "Consecutive executor rejections.",
                              registry=r)
        self.daily_loss = Gauge("tm_risk_daily_loss_ratio",
                                "Loss since the UTC day's first snapshot (0..1; negative = gain).",
                                registry=r)
        self.cumulative_loss = Gauge("tm_risk_cumulative_loss_ratio",
                                     "Loss since inception or the last recorded reset (0..1; "
                                     "negative = gain).", registry=r)
        self.limit_trips = Counter("tm_risk_loss_limit_trips_total",
                                   "Breaker trips by a loss limit.", ("limit",), registry=r)
        self.holds = Gauge("tm_risk_breaker_hold",
                           "1 for the hold keeping the breaker OPEN (kill, manual, daily_loss, "
                           "cumulative_loss), else 0.", ("hold",), registry=r)
        self.valuations = Counter("tm_risk_valuations_total",
                                  "Intra-bar valuations: applied, stale (a newer snapshot or "
                                  "valuation) or no_snapshot.", ("result",), registry=r)
        self.last_valuation = Gauge("tm_risk_last_valuation_time_seconds",
                                    "Time of the newest intra-bar valuation applied (0: none).",
                                    registry=r)
        self.instrument_updates = Counter(
            "tm_risk_instrument_updates_total", "Lot filters of a traded instrument loaded or "
            "changed by the venue.", ["instrument"], registry=r)
        self.delivery_time = Gauge(
            "tm_risk_instrument_delivery_time_seconds", "The venue's scheduled delisting of a "
            "traded instrument (instruments-info deliveryTime), s since the epoch; 0 = none.",
            ["instrument"], registry=r)
        self.trading = Gauge(
            "tm_risk_instrument_trading", "1 while the venue's status of a traded instrument is "
            "Trading, 0 otherwise (PreLaunch, Delivering, Closed).", ["instrument"], registry=r)
        for result in ("applied", "stale", "no_snapshot"):
            self.valuations.labels(result)
        for limit in ("daily_loss", "cumulative_loss"):
            self.limit_trips.labels(limit)
        self.state.set(0)
        self.hold("")

    def decision(self, code: str, secs: float) -> None:
        self.decisions.labels(code).observe(secs)

    def approved(self, instrument: str, kind: str) -> None:
        self.approved_total.labels(instrument, kind).inc()

    def rejected(self, code: str) -> None:
        self.rejected_total.labels(code).inc()

    def var(self, result: VarResult) -> None:
        self.var_ratio.labels("parametric").set(result.parametric)
        self.var_ratio.labels("historical").set(result.historical)

    def breaker_state(self, state: State) -> None:
        self.state.set(STATE_CODE[state])

    def transition(self, t: Transition) -> None:
        self.transitions.labels(t.from_state.value, t.to_state.value, t.trigger.value).inc()
        self.breaker_state(t.to_state)
        if t.trigger.value in ("daily_loss", "cumulative_loss"):
            self.limit_trips.labels(t.trigger.value).inc()

    def losses(self, daily: float, cumulative: float) -> None:
        self.daily_loss.set(daily)
        self.cumulative_loss.set(cumulative)

    def hold(self, hold: str) -> None:
        for h in HOLD_RANK:
            if h:
                self.holds.labels(h).set(1 if h == hold else 0)

    def valuation(self, result: str, at_ms: int | None = None) -> None:
        self.valuations.labels(result).inc()
        if at_ms is not None:
            self.last_valuation.set(at_ms / 1000)

    def drawdown(self, ratio: float) -> None:
        self.drawdown_ratio.set(ratio)

    def instruments_changed(self, instrument: str, spec: LotFilter) -> None:
        self.instrument_updates.labels(instrument).inc()
        self.delivery_time.labels(instrument).set(spec.delivery_time_ms / 1000)
        self.trading.labels(instrument).set(1 if spec.status == TRADING else 0)

    def exec_failures(self, n: int) -> None:
        self.failures.set(n)
