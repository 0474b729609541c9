"""Regime per instrument and bar: one GARCH step and one HMM forward-filter step (no refit).

For bar t with close ``c_t``: ``r_t = ln(c_t / c_{t-1})`` (bar to bar, no gap filling), the GARCH
forecast ``sigma_{t+1|t}`` after ``r_t`` (decimal per bar), and the HMM observation
``[r_t, ln sigma_{t+1|t}]`` (:func:`tm_quant.regime.regime_observation`, the trainer's layout). The
published probabilities are the filter's ``alpha_t`` (Bull, Neutral, Bear, Crisis); they equal
hmmlearn's ``predict_proba(X[:t+1])[-1]`` over the same bars. The first bar of an instrument has
no return: it gets the HMM prior (``startprob``) and the GARCH starting volatility.

Without a model for an instrument: label Neutral, probabilities 0.25 each, the configured
Neutral Kelly fraction, ``model_version`` "" and a volatility from default GARCH parameters.

Hot reload: the last ``replay_bars`` closes are kept in the state; a new model re-runs its GARCH
and HMM over them (pure, no I/O), so it starts from a filtered state, not from its prior.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, cast

import numpy as np
from tm_common.state import checked_state
from tm_quant.garch import DEFAULT_GARCH_PARAMS, GarchFilter, GarchParams
from tm_quant.regime import STATE_LABELS, RegimeFilter, RegimeState, regime_observation

from tm_regime.domain.model import RegimeBundleModel

SCHEMA = 1
EQUAL = (0.25, 0.25, 0.25, 0.25)


@dataclass(frozen=True)
class RegimeConfig:
    """``symbols``: instruments handled; ``no_model_kelly``: fraction published without a model
    (the Neutral default 0.50); ``replay_bars``: closes kept for re-filtering on reload."""

    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    no_model_kelly: float = 0.50
    replay_bars: int = 300


@dataclass(frozen=True)
class RegimeOut:
    """One ``RegimeDetected``: probabilities in Bull, Neutral, Bear, Crisis order; volatility is
    the GARCH one-bar-ahead sigma of log returns (decimal per 4h bar)."""

    instrument: str
    bar_time_ms: int
    label: str
    probabilities: tuple[float, float, float, float]
    volatility: float
    kelly_fraction: float
    model_version: str
    ts_event_ns: int

    @property
    def correlation_id(self) -> str:
        return f"{self.instrument}:{self.bar_time_ms}"


class _Track:
    """One instrument's filters and recent closes."""

    def __init__(self, replay_bars: int) -> None:
        self.last_ms: int | None = None
        self.last_close: float | None = None
        self.closes: deque[float] = deque(maxlen=replay_bars)
        self.garch = GarchFilter(DEFAULT_GARCH_PARAMS)
        self.hmm: RegimeFilter | None = None


class RegimeEngine:
    model: RegimeBundleModel | None
    model_version: str

    def __init__(self, cfg: RegimeConfig) -> None:
        self.cfg = cfg
        self.restore(None)

    # -- model ---------------------------------------------------------------------------
    @property
    def needs_attach(self) -> bool:
        return self.model_version != "" and self.model is None

    def _filters(self, track: _Track, inst: str, variance: float | None = None,
                 alpha: Any = None) -> None:
        spec = None if self.model is None else self.model.instruments.get(inst)
        params: GarchParams = DEFAULT_GARCH_PARAMS if spec is None else spec.garch
        track.garch = GarchFilter(params, sigma2=variance)
        track.hmm = None if spec is None else RegimeFilter(
            spec.hmm, spec.kelly, alpha=None if alpha is None else np.asarray(alpha))

    def set_model(self, model: RegimeBundleModel | None) -> None:
        """Switch to ``model`` and re-filter each instrument's recent closes with it."""
        self._rebuild_pending()         # a restored state whose model is gone: keep its closes
        self.model = model
        self.model_version = "" if model is None else model.version
        for inst, tr in self.tracks.items():
            self._filters(tr, inst)
            closes = list(tr.closes)
            for prev, cur in pairwise(closes):
                self._step(tr, math.log(cur / prev))

    def attach(self, model: RegimeBundleModel) -> None:
        """Attach the model object of the restored version; filters resume from the snapshot."""
        if model.version != self.model_version:
            raise ValueError(f"attach {model.version!r} to state of {self.model_version!r}")
        self.model = model
        self._rebuild_pending()

    # -- bars ----------------------------------------------------------------------------
    @staticmethod
    def _step(tr: _Track, r: float) -> tuple[float, RegimeState | None]:
        sigma = tr.garch.update(100.0 * r) / 100.0
        state = None if tr.hmm is None else tr.hmm.update(regime_observation(r, sigma))
        return sigma, state

    def on_bar(self, instrument: str, bar_time_ms: int, close: float,
               ts_event_ns: int) -> tuple[RegimeOut | None, str]:
        """Advance ``instrument`` by one bar; returns (output, why dropped or "")."""
        if instrument not in self.cfg.symbols:
            return None, f"instrument {instrument} not configured"
        if not close > 0:
            raise ValueError(f"close must be > 0, got {close}")
        tr = self.tracks.get(instrument)
        if tr is None:
            tr = self.tracks[instrument] = _Track(self.cfg.replay_bars)
            self._filters(tr, instrument)
        if tr.last_ms is not None and bar_time_ms <= tr.last_ms:
            return None, "duplicate or late bar"
        if tr.last_close is None:           # first bar: no return yet, publish the prior
            sigma = math.sqrt(tr.garch.variance) / 100.0
            state = None
            probs = (None if tr.hmm is None or self.model is None
                     else self.model.instruments[instrument].hmm.startprob)
        else:
            sigma, state = self._step(tr, math.log(close / tr.last_close))
            probs = None if state is None else state.probs
        tr.last_ms, tr.last_close = bar_time_ms, close
        tr.closes.append(close)
        if probs is None or self.model is None:
            return RegimeOut(instrument, bar_time_ms, "Neutral", EQUAL, sigma,
                             self.cfg.no_model_kelly, "", ts_event_ns), ""
        spec = self.model.instruments[instrument]
        k = int(np.argmax(probs))
        label = STATE_LABELS[k]
        four = cast("tuple[float, float, float, float]", tuple(float(p) for p in probs))
        return RegimeOut(instrument, bar_time_ms, label, four, sigma,
                         spec.kelly.for_label(label), self.model_version, ts_event_ns), ""

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-able state (floats are finite: closes, variances, probabilities)."""
        return {"schema": SCHEMA, "model_version": self.model_version, "instruments": {
            inst: {"last_ms": tr.last_ms, "last_close": tr.last_close, "closes": list(tr.closes),
                   "variance": tr.garch.variance,
                   "alpha": None if tr.hmm is None or tr.hmm.alpha is None else tr.hmm.alpha.tolist()}
            for inst, tr in sorted(self.tracks.items())}}

    def restore(self, state: dict[str, Any] | None) -> None:
        """Reset to ``state`` (None = initial); a named model must then be :meth:`attach`-ed."""
        s = checked_state(state, SCHEMA, "regime")
        self.model = None
        self.model_version = s.get("model_version", "")
        self.tracks: dict[str, _Track] = {}
        self._pending: dict[str, dict[str, Any]] = dict(s.get("instruments", {}))
        if not self.model_version:
            self._rebuild_pending()

    def _rebuild_pending(self) -> None:
        for inst, d in self._pending.items():
            tr = _Track(self.cfg.replay_bars)
            tr.last_ms, tr.last_close = d["last_ms"], d["last_close"]
            tr.closes.extend(float(c) for c in d["closes"])
            self._filters(tr, inst, variance=float(d["variance"]), alpha=d["alpha"])
            self.tracks[inst] = tr
        self._pending = {}
