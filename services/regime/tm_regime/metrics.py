"""Prometheus metrics of the regime service (``tm_regime_*``), on the service's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge
from tm_common.models.metrics import ModelMetrics
from tm_quant.regime import STATE_LABELS


class RegimeMetrics(ModelMetrics):
    """``registry`` None → a private registry (tests build many handlers in one process)."""

    service = "regime"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self._model_metrics(r)
        self.label = Gauge("tm_regime_label", "1 for the current regime label of the instrument, "
                           "0 for the others.", ["instrument", "label"], registry=r)
        self.probability = Gauge("tm_regime_probability", "Filtered regime probability.",
                                 ["instrument", "label"], registry=r)
        self.volatility = Gauge("tm_regime_volatility", "GARCH one-bar-ahead sigma of log "
                                "returns (decimal per 4h bar).", ["instrument"], registry=r)
        self.kelly = Gauge("tm_regime_kelly_fraction", "Kelly fraction of the current regime.",
                           ["instrument"], registry=r)
        self.published = Counter("tm_regime_detected_total", "Regimes published by label.",
                                 ["instrument", "label"], registry=r)
        self.dropped = Counter("tm_regime_bars_dropped_total", "Bars ignored (duplicate, late, "
                               "unknown instrument).", ["reason"], registry=r)
        self.db_backlog = Gauge("tm_regime_db_backlog", "Regime row batches waiting for the "
                                "database.", registry=r)

    def observe(self, out) -> None:
        """Record one :class:`~tm_regime.domain.engine.RegimeOut`."""
        for lab, p in zip(STATE_LABELS, out.probabilities):
            self.label.labels(out.instrument, lab).set(1.0 if lab == out.label else 0.0)
            self.probability.labels(out.instrument, lab).set(p)
        self.volatility.labels(out.instrument).set(out.volatility)
        self.kelly.labels(out.instrument).set(out.kelly_fraction)
        self.published.labels(out.instrument, out.label).inc()
