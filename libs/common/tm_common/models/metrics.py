"""The metrics every service that runs a registry model exports (``tm_<service>_*``)."""

from __future__ import annotations

from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge


class ModelMetrics:
    """The model in use, its age and its (re)loads: ``tm_<service>_model_info{version}``,
    ``tm_<service>_model_created_timestamp_seconds`` and ``tm_<service>_model_reloads_total
    {result}``. A service's metrics class names its ``service`` and calls :meth:`_model_metrics`
    with its registry first (no model yet)."""

    service: ClassVar[str]

    def _model_metrics(self, r: CollectorRegistry) -> None:
        s = self.service
        self.model_created = Gauge(f"tm_{s}_model_created_timestamp_seconds", f"When the {s} "
                                   "model in use was trained (registered), unix seconds; 0 "
                                   "without a model. Alerts compare it with the retraining "
                                   "schedule.", registry=r)
        self.model_info = Gauge(f"tm_{s}_model_info", f"1 for the {s} model version in use "
                                "(version=\"none\" without a model).", ["version"], registry=r)
        self.reloads = Counter(f"tm_{s}_model_reloads_total", "Model (re)loads by outcome.",
                               ["result"], registry=r)
        self.set_model("")

    def set_model(self, version: str, created_at_ms: int | None = None) -> None:
        """``version`` "" = no model; ``created_at_ms``: when it was registered (unix ms)."""
        self.model_info.clear()
        self.model_info.labels(version or "none").set(1)
        self.model_created.set((created_at_ms or 0) / 1000 if version else 0)
