"""``md.bar`` / ``md.dvol`` / ``md.funding`` / ``models.promoted`` → :class:`SignalEngine` →
``signal.tl``.

State and restarts: the engine's whole state (feature windows, live IC, buffered bars, DVOL,
model version) is the handler snapshot, saved by the consumer in the same transaction as the
signals and the ack. A restart restores it and re-attaches the model *of that version* from the
registry, so the result never depends on when the process restarted (ARCHITECTURE §4, §9.4).

Models: with no snapshot (first start) the production model is loaded on the first event. A
``model.promoted`` (kind ``signal``) is handled like any event, between two bars: the new bundle is
loaded, and each instrument's features are rebuilt from history (files + ``bars`` table) from the
bundle's ``first_bar_ms`` to the last bar this service handled, the same bars the live path saw.
An instrument first seen later is warmed lazily on its first bar, up to just before it. The swap
and the new state commit atomically with the promotion's ack: no bar is lost or handled twice.
A warm-up replays DVOL and the instrument's funding as of each bar close too (files + ``dvol`` /
``funding`` tables), so the rebuilt features equal the trainer's batch features for those bars.

Readiness: ``model`` (the life cycle's check) and ``inputs`` (:meth:`SignalHandler.inputs_ready`:
fails naming each stale side input, see :mod:`tm_signal.domain.staleness`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from tm_common.bus.handler import Emit
from tm_common.bus.streams import SIGNAL_TL
from tm_common.errors import NotReady, PermanentError, TransientError  # noqa: F401 - NotReady re-exported
from tm_common.events import (
    BarClosed,
    DvolUpdated,
    Envelope,
    FundingRateUpdated,
    ModelPromoted,
    SignalGenerated,
    deterministic_id,
)
from tm_common.models.lifecycle import ModelLifecycle
from tm_quant.features import BAR_MS

from tm_signal.domain.bars import BarIn
from tm_signal.domain.engine import SignalEngine, SignalOut
from tm_signal.domain.model import SignalModel
from tm_signal.metrics import SignalMetrics
from tm_signal.models import KIND, SignalModels
from tm_signal.repository import BarHistory, SignalRepository

log = structlog.get_logger("tm.signal")


class SignalHandler(ModelLifecycle[SignalModel]):
    """Args: ``engine``; ``models`` (registry access); ``history`` for warm-up (None = start
    features at the first live bar); ``repo`` for the signals table (None = no writes);
    ``metrics``; ``dvol_currency``; ``trade_start_ms``: a replay's warm-up ends there (a bar
    that opens before it gets no signal: :mod:`tm_app.warmup`). The model life cycle (first start, restart, promotion) is
    :class:`~tm_common.models.lifecycle.ModelLifecycle`'s; this handler re-warms the features
    after a swap. The snapshot is strict JSON (every feature float is base64 float64; the rest
    is finite)."""

    service = "signal"

    def __init__(self, engine: SignalEngine, models: SignalModels, *,
                 history: BarHistory | None = None, repo: SignalRepository | None = None,
                 metrics: SignalMetrics | None = None, dvol_currency: str = "BTC",
                 out_stream: str = SIGNAL_TL, trade_start_ms: int | None = None) -> None:
        self.engine, self.models, self.history, self.repo = engine, models, history, repo
        self.trade_start_ms = trade_start_ms
        self.metrics = metrics or SignalMetrics()
        if repo is not None:   # read at each scrape: back to 0 once the writer caught up
            self.metrics.db_backlog.set_function(lambda: repo.backlog)
        self.dvol_currency, self.out_stream = dvol_currency, out_stream
        self._cold_start = True
        self.handled = 0

    # -- events ----------------------------------------------------------------------------
    async def handle(self, event: Envelope) -> Sequence[Emit]:
        await self._ensure_model()
        body = event.body
        out: Sequence[Emit] = ()
        if isinstance(body, BarClosed):
            out = await self._on_bar(event, body)
        elif isinstance(body, DvolUpdated):
            if body.currency.upper() == self.dvol_currency:
                self.engine.on_dvol(body.known_at_ms, float(body.value))
        elif isinstance(body, ModelPromoted):
            if body.kind == KIND:
                await self._promote(body.version, body.reason)
        elif isinstance(body, FundingRateUpdated):
            self.engine.on_funding(body.instrument, body.settle_time_ms, float(body.rate))
        self.handled += 1
        return out

    async def _model_swapped(self, model: SignalModel | None) -> dict[str, Any]:
        """Rebuild every instrument's features for the new model."""
        await self._warm_all()
        return {"warmed": {k: v[0].n_bars for k, v in self.engine.feats.items()}}

    async def _warm_all(self) -> None:
        for inst, first, end in self.engine.warm_targets():
            await self._warm(inst, first, end)

    async def _warm(self, inst: str, first_ms: int, end_ms: int) -> None:
        """Rebuild ``inst``'s features from history bars ``first_ms..end_ms`` (open times)."""
        if self.history is None or end_ms < first_ms:
            return
        btc = self.engine.cfg.btc_symbol if self.engine.cfg.btc_symbol in self.engine.cfg.symbols \
            else None
        try:
            bars = await self.history.bars(inst, first_ms, end_ms)
            # A few bars earlier so the first bar finds its BTC bar even across a BTC gap.
            btc_bars = [] if btc is None or inst == btc else \
                await self.history.bars(btc, first_ms - 8 * BAR_MS, end_ms)
            dvol = await self.history.dvol(end_ms + BAR_MS, self.dvol_currency)
            funding = await self.history.funding(inst, end_ms + BAR_MS)
        except Exception as e:  # history unavailable: retry the event later
            raise TransientError(f"bar history for {inst}: {type(e).__name__}: {e}") from e
        # CPU-bound (~75 µs per bar): off the event loop so /healthz keeps answering.
        n = await asyncio.to_thread(self.engine.warm, inst, bars, btc_bars, dvol, funding)
        self.metrics.warm_bars.labels(inst).inc(n)
        log.info("signal.features_warmed", instrument=inst, bars=n, first_ms=first_ms, end_ms=end_ms)

    async def _on_bar(self, event: Envelope, b: BarClosed) -> list[Emit]:
        if b.interval_min != BAR_MS // 60_000:      # the models are 4h models
            self.metrics.dropped.labels("interval").inc()
            return []
        if self.trade_start_ms is not None and b.open_time_ms < self.trade_start_ms:
            return []          # a replay's warm-up bar: regime and risk use it; no prediction
        if not (b.open > 0 and b.high > 0 and b.low > 0 and b.close > 0 and b.volume >= 0):
            raise PermanentError(f"bar {b.instrument}:{b.open_time_ms} has a non-positive price")
        bar = BarIn(b.instrument, b.open_time_ms, float(b.open), float(b.high), float(b.low),
                    float(b.close), float(b.volume), event.ts_event_ns)
        for inst, first, end in self.engine.cold(bar):
            await self._warm(inst, first, end)
        outs, dropped = self.engine.on_bar(bar)
        if dropped:
            self.metrics.dropped.labels(dropped.split(" ")[0]).inc()
            log.info("signal.bar_dropped", reason=dropped, bar_time_ms=b.open_time_ms)
        emits = [Emit(self.out_stream, to_event(o), ts_event_ns=o.ts_event_ns,
                      correlation_id=o.correlation_id) for o in outs]
        for o in outs:
            self.metrics.observe(o)
        if self.repo is not None and outs:
            self.repo.save([row(o, deterministic_id(event.event_id, i, SignalGenerated.TYPE))
                            for i, o in enumerate(outs)])
        return emits

    # -- readiness and status ----------------------------------------------------------------
    def inputs_ready(self) -> bool:
        """True when no side input a model reads was stale at its instrument's last bar; else
        raises :class:`NotReady` naming each (``/readyz`` check ``inputs``)."""
        stale = self.engine.stale_inputs()
        if stale:
            raise NotReady("degraded: " + "; ".join(stale))
        return True

    def status(self) -> dict[str, Any]:
        e = self.engine
        return {
            "model_version": e.model_version or None,
            "production_version": self.models.production_version,
            "model_error": self.models.last_error,
            "instruments": {s: {"last_bar_ms": e.last_ms.get(s),
                                "feature_bars": e.feats[s][0].n_bars if s in e.feats else 0,
                                "live_ic": e.ic[s].value if s in e.ic else None,
                                "inputs": {a.name: {"age_ms": a.age_ms, "stale": a.stale}
                                           for a in e.inputs.get(s, ())}}
                            for s in e.cfg.symbols},
            "buffered": [f"{b.instrument}:{b.open_time_ms}" for b in e.buffer],
            "db": None if self.repo is None else self.repo.status(),
        }


def to_event(o: SignalOut) -> SignalGenerated:
    return SignalGenerated(instrument=o.instrument, bar_time_ms=o.bar_time_ms,
                           direction=o.direction, probability=o.probability,
                           confidence=o.confidence, live_ic=o.live_ic, live_ic_n=o.live_ic_n,
                           model_version=o.model_version, inference_us=o.inference_us,
                           reason=o.reason)


def row(o: SignalOut, event_id: str) -> dict:
    """A ``signals`` table row."""
    return {"instrument": o.instrument, "bar_time_ms": o.bar_time_ms, "direction": o.direction,
            "probability": o.probability, "confidence": o.confidence, "live_ic": o.live_ic,
            "model_version": o.model_version, "inference_us": o.inference_us,
            "reason": o.reason, "event_id": event_id}
