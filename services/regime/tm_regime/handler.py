"""``md.bar`` / ``models.promoted`` → :class:`RegimeEngine` → ``regime.state``.

State: per instrument the HMM filter's ``alpha``, the GARCH variance, the last bar time and close,
the recent closes, and the model version: the handler snapshot (JSON), saved by the consumer in
the same transaction as the regimes and the ack. A restart restores it and re-attaches the model
*of that version*; the first start (no snapshot) uses the production model.

Hot reload: a ``model.promoted`` of kind ``regime`` is handled between two bars; the new model
re-filters the recent closes and the swap commits with the promotion's ack (no bar lost or
handled twice). No production model: every bar still gets a Neutral regime (equal probabilities,
the configured Neutral Kelly fraction, ``model_version`` "") and ``/readyz`` says
"no production regime model".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import structlog
from tm_common.bus.handler import Emit
from tm_common.bus.streams import REGIME_STATE
from tm_common.errors import NotReady, PermanentError  # noqa: F401 - NotReady re-exported
from tm_common.events import BarClosed, Envelope, ModelPromoted, RegimeDetected, deterministic_id
from tm_common.events.signals import RegimeLabel
from tm_common.models.lifecycle import ModelLifecycle

from tm_regime.domain.engine import RegimeEngine, RegimeOut
from tm_regime.domain.model import RegimeBundleModel
from tm_regime.metrics import RegimeMetrics
from tm_regime.models import KIND, RegimeModels
from tm_regime.repository import RegimeRepository

log = structlog.get_logger("tm.regime")
NO_MODEL = "no production regime model"


class RegimeHandler(ModelLifecycle[RegimeBundleModel]):
    """A ``StatefulHandler``; the model life cycle (first start, restart, promotion) is
    :class:`~tm_common.models.lifecycle.ModelLifecycle`'s."""

    service = "regime"

    def __init__(self, engine: RegimeEngine, models: RegimeModels, *,
                 repo: RegimeRepository | None = None, metrics: RegimeMetrics | None = None,
                 out_stream: str = REGIME_STATE) -> None:
        self.engine, self.models, self.repo = engine, models, repo
        self.metrics = metrics or RegimeMetrics()
        if repo is not None:   # read at each scrape: back to 0 once the writer caught up
            self.metrics.db_backlog.set_function(lambda: repo.backlog)
        self.out_stream = out_stream
        self._cold_start = True
        self.handled = 0

    # -- events ----------------------------------------------------------------------------
    async def handle(self, event: Envelope) -> Sequence[Emit]:
        await self._ensure_model()
        body = event.body
        out: list[Emit] = []
        if isinstance(body, BarClosed):
            out = self._on_bar(event, body)
        elif isinstance(body, ModelPromoted) and body.kind == KIND:
            await self._promote(body.version, body.reason)
        self.handled += 1
        return out

    def _on_bar(self, event: Envelope, b: BarClosed) -> list[Emit]:
        if b.interval_min != 240:                   # the models are 4h models
            self.metrics.dropped.labels("interval").inc()
            return []
        if not b.close > 0:
            raise PermanentError(f"bar {b.instrument}:{b.open_time_ms} has close {b.close}")
        out, dropped = self.engine.on_bar(b.instrument, b.open_time_ms, float(b.close),
                                          event.ts_event_ns)
        if out is None:
            self.metrics.dropped.labels(dropped.split(" ")[0]).inc()
            log.info("regime.bar_dropped", reason=dropped, bar_time_ms=b.open_time_ms)
            return []
        self.metrics.observe(out)
        if self.repo is not None:
            self.repo.save([row(out, deterministic_id(event.event_id, 0, RegimeDetected.TYPE))])
        return [Emit(self.out_stream, to_event(out), ts_event_ns=out.ts_event_ns,
                     correlation_id=out.correlation_id)]

    # -- readiness and status ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        e = self.engine
        return {"model_version": e.model_version or None,
                "production_version": self.models.production_version,
                "model_error": self.models.last_error,
                "instruments": {s: {"last_bar_ms": tr.last_ms, "recent_closes": len(tr.closes)}
                                for s, tr in sorted(e.tracks.items())},
                "db": None if self.repo is None else self.repo.status()}


def to_event(o: RegimeOut) -> RegimeDetected:
    # the engine's labels are STATE_LABELS (Bull, Neutral, Bear, Crisis): the event's literal
    return RegimeDetected(instrument=o.instrument, bar_time_ms=o.bar_time_ms,
                          label=cast(RegimeLabel, o.label),
                          probabilities=o.probabilities, volatility=o.volatility,
                          kelly_fraction=o.kelly_fraction, model_version=o.model_version)


def row(o: RegimeOut, event_id: str) -> dict:
    """A ``regimes`` table row."""
    return {"instrument": o.instrument, "bar_time_ms": o.bar_time_ms, "label": o.label,
            "probabilities": list(o.probabilities), "volatility": o.volatility,
            "kelly_fraction": o.kelly_fraction, "model_version": o.model_version,
            "event_id": event_id}
