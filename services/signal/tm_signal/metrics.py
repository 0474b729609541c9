"""Prometheus metrics of the signal service (``tm_signal_*``), on the service's registry."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tm_common.models.metrics import ModelMetrics

# 10 µs .. 50 ms: features ~75 µs, a booster call ~0.1-0.5 ms.
INFERENCE_BUCKETS_S = (1e-5, 2.5e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2)


class SignalMetrics(ModelMetrics):
    """``registry`` None → a private registry (tests build many handlers in one process)."""

    service = "signal"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self._model_metrics(r)
        self.inference = Histogram("tm_signal_inference_seconds", "Booster inference per signal, s.",
                                   ["instrument"], buckets=INFERENCE_BUCKETS_S, registry=r)
        self.features = Histogram("tm_signal_features_seconds", "Incremental features per bar, s.",
                                  ["instrument"], buckets=INFERENCE_BUCKETS_S, registry=r)
        self.signals = Counter("tm_signal_signals_total", "Signals published by direction.",
                               ["instrument", "direction"], registry=r)
        self.zero = Counter("tm_signal_zero_confidence_total", "Signals without a prediction, by "
                            "cause.", ["instrument", "cause"], registry=r)
        self.live_ic = Gauge("tm_signal_live_ic", "Rolling Spearman IC of matured predictions "
                             "(NaN until enough).", ["instrument"], registry=r)
        self.warm_bars = Counter("tm_signal_warm_bars_total", "History bars replayed to warm "
                                 "features after a model load.", ["instrument"], registry=r)
        self.dropped = Counter("tm_signal_bars_dropped_total", "Bars ignored (duplicate, late, "
                               "unknown instrument).", ["reason"], registry=r)
        self.db_backlog = Gauge("tm_signal_db_backlog", "Signal row batches waiting for the "
                                "database.", registry=r)
        self.stale_input = Gauge("tm_signal_stale_input", "1 when a side input the model reads "
                                 "was stale at the instrument's last bar (withheld, confidence "
                                 "cut).", ["input", "instrument"], registry=r)
        self.input_age = Gauge("tm_signal_input_age_seconds", "Age of the side input at the "
                               "instrument's last bar close, market time, s (+Inf: none known).",
                               ["input", "instrument"], registry=r)

    def observe(self, out) -> None:
        """Count one :class:`~tm_signal.domain.engine.SignalOut`."""
        self.signals.labels(out.instrument, str(out.direction)).inc()
        if out.features_us:
            self.features.labels(out.instrument).observe(out.features_us / 1e6)
        if out.reason.startswith("ok"):
            self.inference.labels(out.instrument).observe(out.inference_us / 1e6)
        else:
            self.zero.labels(out.instrument, zero_cause(out.reason)).inc()
        self.live_ic.labels(out.instrument).set(math.nan if out.live_ic is None else out.live_ic)
        for a in out.inputs:
            self.stale_input.labels(a.name, out.instrument).set(1 if a.stale else 0)
            self.input_age.labels(a.name, out.instrument).set(
                math.inf if a.age_ms is None else a.age_ms / 1000)


def zero_cause(reason: str) -> str:
    """A bounded label for why a signal has no prediction."""
    for prefix, cause in (("no production", "no_model"), ("warming up", "warming_up"),
                          ("model output", "not_finite"), ("model ", "instrument_not_in_model")):
        if reason.startswith(prefix):
            return cause
    return "other"
