"""The signal engine: bars in, signals out, for every configured instrument (pure, no I/O).

Per bar: order it against BTC (:mod:`.aligner`), update the instrument's incremental features
(DVOL and funding as known at the bar's close), predict with the production model, turn P(up)
into direction and confidence, and track the live IC. A side input older than its maximum age is
withheld from the model and cuts the confidence (:mod:`.staleness`, the documented rule). Without a model (or before the features are
warm) it still emits one signal per bar, with zero confidence and the reason.

History I/O stays outside: the handler fetches bars and calls :meth:`SignalEngine.warm` for the
instruments :meth:`SignalEngine.cold` names. The whole state is :meth:`snapshot` JSON, saved by
the consumer atomically with the signals; a restored engine continues bit-identically.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tm_common.bar_signal import BarSignal
from tm_common.state import checked_state
from tm_quant.features import BAR_MS, WARMUP_BARS, Bar, IncrementalFeatures
from tm_quant.features.funding import per_8h
from tm_quant.garch import GarchParams

from tm_signal.domain import feature_codec
from tm_signal.domain.aligner import Schedule, schedule
from tm_signal.domain.asof import KnownValues
from tm_signal.domain.bars import BarIn
from tm_signal.domain.live_ic import LiveIC
from tm_signal.domain.model import SignalModel
from tm_signal.domain.staleness import DAY_MS, InputAge, assess, confidence_cut, withhold

SCHEMA = 1
NO_MODEL = "no production signal model"


@dataclass(frozen=True)
class EngineConfig:
    """``symbols``: instruments handled; ``btc_symbol``: source of the cross features (None =
    none); ``ic_window``/``ic_min_pairs``: live IC window and minimum matured predictions;
    ``min_confidence``: below it the direction is 0 (confidence is still reported);
    ``ic_reset_on_reload``: forget the IC history when a new model version loads;
    ``dvol_max_age_ms``/``funding_max_age_ms``: a side input older than this at a bar's close is
    stale; ``stale_confidence_fraction``: the confidence factor per stale input, [0, 1]
    (:mod:`.staleness`)."""

    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    btc_symbol: str | None = "BTCUSDT"
    ic_window: int = 60
    ic_min_pairs: int = 20
    min_confidence: float = 0.0
    ic_reset_on_reload: bool = False
    dvol_max_age_ms: int = 2 * DAY_MS
    funding_max_age_ms: int = DAY_MS
    stale_confidence_fraction: float = 0.5

    @property
    def max_age_ms(self) -> dict[str, int]:
        return {"dvol": self.dvol_max_age_ms, "funding": self.funding_max_age_ms}


@dataclass(frozen=True, kw_only=True)
class SignalOut(BarSignal):
    """One signal. ``inference_us``/``features_us``: measured cost (µs), never used in decisions;
    ``inputs``: the side inputs the model reads, with their ages at the bar's close."""

    model_version: str
    reason: str
    inference_us: float = 0.0
    features_us: float = 0.0
    inputs: tuple[InputAge, ...] = ()

    @property
    def correlation_id(self) -> str:
        return f"{self.instrument}:{self.bar_time_ms}"


def decide(p: float, min_confidence: float = 0.0, factor: float = 1.0) -> tuple[int, float]:
    """(direction, confidence) from P(up) ``p``: confidence = |2p - 1| * ``factor`` in [0, 1]
    (``factor`` < 1: the stale-input cut); direction = sign(p - 0.5), or 0 when the confidence
    is 0 or below ``min_confidence``."""
    conf = min(1.0, abs(2.0 * p - 1.0)) * factor
    if conf == 0.0 or conf < min_confidence:
        return 0, conf
    return (1 if p > 0.5 else -1), conf


class SignalEngine:
    """Args: ``cfg``; ``timer`` (ns, only for the reported ``inference_us``)."""

    model: SignalModel | None
    model_version: str
    buffer: list[BarIn]

    def __init__(self, cfg: EngineConfig, timer: Callable[[], int] = time.perf_counter_ns) -> None:
        self.cfg, self._timer = cfg, timer
        self.restore(None)

    # -- model ---------------------------------------------------------------------------
    @property
    def needs_attach(self) -> bool:
        """A restored state names a model version whose object is not attached yet."""
        return self.model_version != "" and self.model is None

    def set_model(self, model: SignalModel | None) -> None:
        """Switch to ``model`` (None = none): every instrument's features become cold."""
        self.model = model
        self.model_version = "" if model is None else model.version
        self.feats.clear()
        self.inputs.clear()
        if self.cfg.ic_reset_on_reload:
            self.ic.clear()

    def attach(self, model: SignalModel) -> None:
        """Attach the model object of the restored version (keeps the restored features)."""
        if model.version != self.model_version:
            raise ValueError(f"attach {model.version!r} to state of {self.model_version!r}")
        self.model = model

    # -- warm-up -------------------------------------------------------------------------
    def cold(self, bar: BarIn) -> list[tuple[str, int, int]]:
        """``(instrument, first_bar_ms, end_ms)`` to :meth:`warm` before :meth:`on_bar`:
        instruments about to be processed with a model but no feature state yet; ``end_ms`` is
        just before the bar that will be processed."""
        if self.model is None:
            return []
        out: dict[str, tuple[str, int, int]] = {}
        for b, _ in self._schedule(bar).ready:
            im = self.model.instruments.get(b.instrument)
            if im is not None and b.instrument not in self.feats and b.instrument not in out:
                out[b.instrument] = (b.instrument, im.first_bar_ms, b.open_time_ms - 1)
        return list(out.values())

    def warm_targets(self) -> list[tuple[str, int, int]]:
        """``(instrument, first_bar_ms, last processed open time)`` for a model just set."""
        if self.model is None:
            return []
        return [(s, im.first_bar_ms, self.last_ms[s]) for s, im in sorted(self.model.instruments.items())
                if s in self.last_ms and s not in self.feats]

    def warm(self, instrument: str, bars: Sequence[Bar], btc_bars: Sequence[Bar],
             dvol: Sequence[tuple[int, float]],
             funding: Sequence[tuple[int, float]] = ()) -> int:
        """Rebuild ``instrument``'s features from history, exactly as live bars would have.

        Args:
            bars: the instrument's bars (open time ascending); those before the model's
                ``first_bar_ms`` are skipped.
            btc_bars: BTC bars over the same span (ignored for BTC itself).
            dvol: ``(known_at_ms, value)`` points, ascending.
            funding: the instrument's ``(settle_time_ms, rate)`` points, ascending.
        Returns the number of bars fed. The newest DVOL and funding points used are also kept
        as the as-of values, so the next live bar sees what an uninterrupted run would.
        """
        assert self.model is not None
        im = self.model.instruments[instrument]
        f = IncrementalFeatures(im.garch)
        use_btc = self._btc() is not None and instrument != self._btc()
        bi = di = fi = n = 0
        btc_cur: Bar | None = None
        dv_cur: tuple[int, float] | None = None
        fu_cur: tuple[int, float] | None = None         # (settle_ms, rate per 8 h)
        for b in bars:
            if b.ts_ms < im.first_bar_ms:
                continue
            close_ms = b.ts_ms + BAR_MS
            while di < len(dvol) and dvol[di][0] <= close_ms:
                dv_cur, di = (int(dvol[di][0]), float(dvol[di][1])), di + 1
            while fi < len(funding) and funding[fi][0] <= close_ms:
                t = int(funding[fi][0])
                fu_cur = (t, per_8h(float(funding[fi][1]), t, None if fu_cur is None else fu_cur[0]))
                fi += 1
            while use_btc and bi < len(btc_bars) and btc_bars[bi].ts_ms <= b.ts_ms:
                btc_cur, bi = btc_bars[bi], bi + 1
            f.update(b, dvol=None if dv_cur is None else dv_cur[1],
                     funding=None if fu_cur is None else fu_cur[1],
                     btc_bar=btc_cur if use_btc else None)
            n += 1
        self.feats[instrument] = (f, im.garch)
        if dv_cur is not None:
            self.dvol.add(*dv_cur)
        if fu_cur is not None:
            self.funding.setdefault(instrument, KnownValues()).add(*fu_cur)
        return n

    # -- events --------------------------------------------------------------------------
    def on_dvol(self, known_at_ms: int, value: float) -> None:
        """A DVOL daily close (percent), usable by bars closing at or after ``known_at_ms``."""
        self.dvol.add(known_at_ms, value)

    def on_funding(self, instrument: str, settle_ms: int, rate: float) -> None:
        """A settled funding rate (decimal per funding interval) known from its settlement time,
        kept per 8 h (:func:`tm_quant.features.funding.per_8h`, with the settlement before it
        in the store: pruning keeps the newest one known); ignored for an instrument this
        engine does not handle."""
        if instrument in self.cfg.symbols:
            kv = self.funding.setdefault(instrument, KnownValues())
            before = kv.point(settle_ms - 1)
            kv.add(settle_ms, per_8h(rate, settle_ms, None if before is None else before[0]))

    def _btc(self) -> str | None:
        b = self.cfg.btc_symbol
        return b if b is not None and b in self.cfg.symbols else None

    def _schedule(self, bar: BarIn) -> Schedule:
        return schedule(bar, self.buffer, self.last_ms, self.cfg.symbols, self._btc())

    def on_bar(self, bar: BarIn) -> tuple[list[SignalOut], str]:
        """Process ``bar`` (and bars it releases); returns (signals, why dropped or "")."""
        sch = self._schedule(bar)
        self.buffer = list(sch.buffer)
        outs = [self._process(b, note) for b, note in sch.ready]
        if outs:
            # Bars still to come close after the oldest instrument's last close.
            oldest = min(self.last_ms[s] for s in self.cfg.symbols if s in self.last_ms)
            self.dvol.prune(min([oldest, *(b.open_time_ms for b in self.buffer)]) + BAR_MS)
            for o in outs:
                if o.instrument in self.funding:
                    self.funding[o.instrument].prune(o.bar_time_ms + BAR_MS)
        return outs, sch.dropped

    def _btc_bar_for(self, t: int) -> Bar | None:
        for b in reversed(self.btc_recent):
            if b.open_time_ms <= t:
                return b.as_bar()
        return None

    def _process(self, bar: BarIn, note: str) -> SignalOut:
        inst, t = bar.instrument, bar.open_time_ms
        self.last_ms[inst] = t
        btc = self._btc()
        if inst == btc:
            self.btc_recent.append(bar)
        ic = self.ic.get(inst)
        if ic is None:
            ic = self.ic[inst] = LiveIC(self.cfg.ic_window, self.cfg.ic_min_pairs)
        ic.on_bar(bar.close)
        im = None if self.model is None else self.model.instruments.get(inst)
        if im is None or self.model is None:
            why = NO_MODEL if self.model is None else f"model {self.model_version} has no {inst}"
            return self._zero(bar, ic, why)
        if inst not in self.feats:      # no history to warm from: start from this bar
            self.feats[inst] = (IncrementalFeatures(im.garch), im.garch)
        f = self.feats[inst][0]
        fund_kv = self.funding.get(inst)
        dv = self.dvol.point(bar.close_ms)
        fu = None if fund_kv is None else fund_kv.point(bar.close_ms)
        ages = assess(im.side_inputs, bar.close_ms,
                      {"dvol": None if dv is None else dv[0], "funding": None if fu is None else fu[0]},
                      self.cfg.max_age_ms)
        self.inputs[inst] = ages
        t0 = self._timer()
        row = f.update(bar.as_bar(), dvol=None if dv is None else dv[1],
                       funding=None if fu is None else fu[1],
                       btc_bar=self._btc_bar_for(t) if btc is not None and inst != btc else None)
        t1 = self._timer()
        if row is None:
            return self._zero(bar, ic, f"warming up: {f.n_bars}/{WARMUP_BARS} bars",
                              (t1 - t0) / 1e3, ages)
        p = im.predict(withhold(row, ages))
        t2 = self._timer()
        if not math.isfinite(p):
            return self._zero(bar, ic, "model output not finite", (t1 - t0) / 1e3, ages)
        p = min(1.0, max(0.0, p))
        direction, conf = decide(p, self.cfg.min_confidence,
                                 confidence_cut(1.0, ages, self.cfg.stale_confidence_fraction))
        live_ic, live_ic_n = ic.value, ic.n
        ic.add(p, bar.close, self.model.horizon_bars)
        stale = [a.describe() for a in ages if a.stale]
        if stale:
            stale[-1] += f": withheld, confidence x{self.cfg.stale_confidence_fraction:g} each"
        notes = [n for n in (note, *stale) if n]
        return SignalOut(inst, t, direction, p, conf, live_ic, bar.ts_event_ns,
                         live_ic_n=live_ic_n,
                         model_version=self.model_version, reason="; ".join(["ok", *notes]),
                         inference_us=(t2 - t1) / 1e3, features_us=(t1 - t0) / 1e3, inputs=ages)

    def _zero(self, bar: BarIn, ic: LiveIC, reason: str, features_us: float = 0.0,
              inputs: tuple[InputAge, ...] = ()) -> SignalOut:
        return SignalOut(bar.instrument, bar.open_time_ms, 0, 0.5, 0.0, ic.value, bar.ts_event_ns,
                         live_ic_n=ic.n,
                         model_version=self.model_version, reason=reason, features_us=features_us,
                         inputs=inputs)

    def stale_inputs(self) -> list[str]:
        """``"<instrument>: stale <input> (...)"`` for every stale side input at the last bar of
        each instrument (empty = none)."""
        return [f"{inst}: {a.describe()}" for inst, ages in sorted(self.inputs.items())
                for a in ages if a.stale]

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (model referenced by version only)."""
        return {
            "schema": SCHEMA, "model_version": self.model_version,
            "last_ms": dict(sorted(self.last_ms.items())),
            "buffer": [b.to_list() for b in self.buffer],
            "btc_recent": [b.to_list() for b in self.btc_recent],
            "dvol": self.dvol.to_list(),
            "funding": {k: v.to_list() for k, v in sorted(self.funding.items())},
            "features": {k: self._encoded(k) for k in sorted(self.feats)},
            "ic": {k: v.to_dict() for k, v in sorted(self.ic.items())},
            "inputs": {k: [a.to_list() for a in v] for k, v in sorted(self.inputs.items())},
        }

    def _encoded(self, inst: str) -> dict[str, Any]:
        # Encoding ~500 floats per instrument on every event would dominate the handler: keep
        # the encoding until the instrument's features change (a bar of it, or a warm-up).
        f, params = self.feats[inst]
        hit = self._enc_cache.get(inst)
        if hit is None or hit[0] is not f or hit[1] != f.n_bars:
            hit = self._enc_cache[inst] = (f, f.n_bars, feature_codec.encode(f, params))
        return hit[2]

    def restore(self, state: dict[str, Any] | None) -> None:
        """Reset to ``state`` (None = initial). The model object must then be attached."""
        s = checked_state(state, SCHEMA, "signal")
        self.model = None
        self.model_version = s.get("model_version", "")
        self.last_ms: dict[str, int] = {k: int(v) for k, v in s.get("last_ms", {}).items()}
        self.buffer = [BarIn.from_list(x) for x in s.get("buffer", [])]
        self.btc_recent: deque[BarIn] = deque((BarIn.from_list(x) for x in s.get("btc_recent", [])),
                                              maxlen=8)
        self.dvol = KnownValues.from_list(s.get("dvol", []))
        self.funding = {k: KnownValues.from_list(v) for k, v in s.get("funding", {}).items()}
        self.feats: dict[str, tuple[IncrementalFeatures, GarchParams]] = {
            k: (feature_codec.decode(v), feature_codec.garch_params(v))
            for k, v in s.get("features", {}).items()}
        self.ic: dict[str, LiveIC] = {
            k: LiveIC.from_dict(v, self.cfg.ic_window, self.cfg.ic_min_pairs)
            for k, v in s.get("ic", {}).items()}
        self._enc_cache: dict[str, tuple[IncrementalFeatures, int, dict[str, Any]]] = {}
        self.inputs: dict[str, tuple[InputAge, ...]] = {
            k: tuple(InputAge.from_list(x) for x in v) for k, v in s.get("inputs", {}).items()}
