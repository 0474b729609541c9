"""Bar-by-bar features (live path) with bounded state. Definitions: :mod:`.spec`.

Same arithmetic as :func:`~tm_quant.features.batch.compute_batch` (windows as two-pass means over
deques, the same EMA recursions), so ``update`` row i equals the batch row i to rounding. State is
O(1): deques of at most 180 floats plus a handful of running averages.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from operator import mul
from typing import Any

import numpy as np

from tm_quant.features import spec
from tm_quant.garch import DEFAULT_GARCH_PARAMS, GarchFilter, GarchParams

NAN = float("nan")
_A9 = 2.0 / 10.0
_AW = 1.0 / 14.0  # Wilder
_MAX_LAG = max(spec.RET_LAGS)
_MAX_RV = max(spec.RV_WINDOWS)


def _div(a: float, b: float) -> float:
    return NAN if b == 0 else a / b


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    d = [x - m for x in xs]
    return m, math.sqrt(sum(map(mul, d, d)) / len(xs))


def _flat(s: float, m: float) -> bool:
    return s <= spec.REL_EPS * (abs(m) + 1.0)


class IncrementalFeatures:
    """Feature vector for one instrument, one closed bar at a time.

    Args:
        garch_params: percent-scaled GARCH parameters (default :data:`DEFAULT_GARCH_PARAMS`);
            use the same ones as the batch run it must match.

    Feed every bar in order (strictly increasing open times); one instance per instrument.
    """

    def __init__(self, garch_params: GarchParams | None = None) -> None:
        self._n = 0
        self._last_ts: int | None = None
        self._prev_c: float | None = None
        self._lc: deque[float] = deque(maxlen=_MAX_LAG + 1)
        self._r2: deque[float] = deque(maxlen=_MAX_RV)
        self._r: deque[float] = deque(maxlen=42)
        self._hl2: deque[float] = deque(maxlen=42)
        self._c20: deque[float] = deque(maxlen=20)
        self._h14: deque[float] = deque(maxlen=14)
        self._l14: deque[float] = deque(maxlen=14)
        self._stoch: deque[float] = deque(maxlen=3)
        self._lv: deque[float] = deque(maxlen=42)
        self._dv: deque[float] = deque(maxlen=7)
        self._fr: deque[float] = deque(maxlen=42)
        self._lb: deque[float] = deque(maxlen=7)
        self._rb: deque[float] = deque(maxlen=42)
        self._ema: dict[int, float | None] = dict.fromkeys(sorted({*spec.EMA_SPANS, 12, 26}))
        self._signal: float | None = None
        self._gain: float | None = None
        self._loss: float | None = None
        self._atr: float | None = None
        self._garch = GarchFilter(garch_params or DEFAULT_GARCH_PARAMS)
        self._dvol = NAN
        self._funding = NAN
        self._btc_close = NAN

    @property
    def n_bars(self) -> int:
        """Bars consumed so far."""
        return self._n

    def update(self, bar: Sequence[Any], dvol: float | None = None, funding: float | None = None,
               btc_bar: Sequence[Any] | None = None) -> np.ndarray | None:
        """Consume one closed bar; return its feature vector, or None during warm-up.

        Args:
            bar: a :class:`~tm_quant.features.spec.Bar` or any 6-sequence ``(ts_ms open time,
                open, high, low, close, volume)``; prices > 0.
            dvol: the latest BTC DVOL daily close (percent) *known at this bar's close* (day d's
                value from d + 1 day 00:00 UTC), or None to keep the previous one.
            funding: the last settled funding rate known at this bar's close (settlement time
                <= close) per 8 h (:func:`tm_quant.features.funding.per_8h` of it and the
                settlement before), or None to keep the previous one.
            btc_bar: the BTC bar with the same open time (or the latest one before it), or None
                to carry the last BTC close forward. Leave None for BTC itself.

        Returns:
            float64 array of ``len(FEATURE_NAMES)`` values, or None for the first
            ``spec.WARMUP_BARS - 1`` bars.

        Raises:
            ValueError: out-of-order bar, non-positive price, or a BTC bar from the future.
        """
        ts, o, h, l, c, v = bar
        ts = int(ts)
        o, h, l, c, v = float(o), float(h), float(l), float(c), float(v)
        if self._last_ts is not None and ts <= self._last_ts:
            raise ValueError(f"bar {ts} is not after the previous bar {self._last_ts}")
        if not min(o, h, l, c) > 0:
            raise ValueError(f"bar {ts} has a non-positive price")
        if btc_bar is not None:
            if int(btc_bar[0]) > ts:
                raise ValueError(f"BTC bar {int(btc_bar[0])} is after bar {ts}: look-ahead")
            self._btc_close = float(btc_bar[4])
        if dvol is not None:
            self._dvol = float(dvol)
        if funding is not None:
            self._funding = float(funding)
        self._last_ts = ts
        out = self._step(ts, o, h, l, c, v)
        self._n += 1
        return out if self._n >= spec.WARMUP_BARS else None

    def _step(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> np.ndarray:
        f: list[float] = []
        lcq = self._lc
        lc = math.log(c)
        lcq.append(lc)
        nl = len(lcq)
        r = lc - lcq[-2] if nl >= 2 else NAN
        for k in spec.RET_LAGS:
            f.append(lc - lcq[-1 - k] if nl > k else NAN)
        ret6 = f[spec.RET_LAGS.index(6)]

        self._r2.append(r * r)
        r2 = list(self._r2)
        n2 = len(r2)
        rv = {w: (math.sqrt(sum(r2[-w:]) / w) if n2 >= w else NAN) for w in spec.RV_WINDOWS}
        f.extend(rv.values())
        f.append(_div(rv[6], rv[42]))
        hl = math.log(h / l)
        self._hl2.append(hl * hl)
        f.append(math.sqrt(_mean(list(self._hl2)) / spec.FOUR_LN2) if len(self._hl2) == 42 else NAN)

        g = self._garch.update(100.0 * r) / 100.0 if self._prev_c is not None else NAN
        f.append(g)
        f.append(_div(g, rv[42]))

        ema = self._ema
        now: dict[int, float] = {}
        for k, prev in ema.items():
            a = 2.0 / (k + 1)
            ema[k] = now[k] = c if prev is None else a * c + (1.0 - a) * prev
        for k in spec.EMA_SPANS:
            f.append(math.log(c / now[k]))
        macd = (now[12] - now[26]) / c
        sig = self._signal = macd if self._signal is None else _A9 * macd + (1.0 - _A9) * self._signal
        f.extend((macd, sig, macd - sig))

        pc = self._prev_c
        if pc is None:
            f.append(NAN)
            tr = h - l
        else:
            d = c - pc
            gain, loss = max(d, 0.0), max(-d, 0.0)
            gg = self._gain = gain if self._gain is None else _AW * gain + (1.0 - _AW) * self._gain
            ll_ = self._loss = loss if self._loss is None else _AW * loss + (1.0 - _AW) * self._loss
            gl = gg + ll_
            f.append(100.0 * gg / gl if gl > 0 else 50.0)
            tr = max(h - l, max(abs(h - pc), abs(l - pc)))

        self._h14.append(h)
        self._l14.append(l)
        if len(self._h14) == 14:
            hh, lo = max(self._h14), min(self._l14)
            rng = hh - lo
            k14 = (c - lo) / rng if rng > 0 else 0.5
        else:
            k14 = NAN
        self._stoch.append(k14)
        f.append(k14)
        f.append(_mean(list(self._stoch)) if len(self._stoch) == 3 else NAN)

        self._c20.append(c)
        if len(self._c20) == 20:
            m, s = _mean_std(list(self._c20))
            f.append(0.5 if _flat(s, m) else (c - m + 2.0 * s) / (4.0 * s))
            f.append(_div(4.0 * s, m))
        else:
            f.extend((NAN, NAN))

        self._atr = tr if self._atr is None else _AW * tr + (1.0 - _AW) * self._atr
        f.append(self._atr / c)

        lv = math.log1p(v)
        self._lv.append(lv)
        lvs = list(self._lv)
        for w in (20, 42):
            if len(lvs) >= w:
                m, s = _mean_std(lvs[-w:])
                f.append(0.0 if _flat(s, m) else (lv - m) / s)
            else:
                f.append(NAN)
        f.append(_mean(lvs[-6:]) - _mean(lvs) if len(lvs) == 42 else NAN)

        f.append(hl)
        f.append((c - l) / (h - l) if h > l else 0.5)
        f.append(math.log(c / o))
        f.extend(spec.calendar(ts))

        dv = self._dvol
        self._dv.append(dv)
        f.append(dv / 100.0)
        f.append(math.log(dv / self._dv[0]) if len(self._dv) == 7 else NAN)
        f.append(dv / 100.0 - rv[42] * spec.ANNUALISE)

        self._fr.append(self._funding)
        frs = list(self._fr)
        f.append(self._funding)
        f.append(_mean(frs[-18:]) if len(frs) >= 18 else NAN)
        f.append(_mean(frs) if len(frs) == 42 else NAN)

        self._btc_features(f, r, ret6)
        self._prev_c = c
        return np.array(f, dtype=np.float64)

    def _btc_features(self, f: list[float], r: float, ret6: float) -> None:
        b = self._btc_close
        lbq = self._lb
        lbq.append(NAN if math.isnan(b) else math.log(b))
        rb = lbq[-1] - lbq[-2] if len(lbq) >= 2 else NAN
        btc6 = lbq[-1] - lbq[0] if len(lbq) == 7 else NAN
        self._r.append(r)
        self._rb.append(rb)
        f.append(rb)
        f.append(btc6)
        if len(self._rb) == 42:
            rs, rbs = list(self._r), list(self._rb)
            f.append(math.sqrt(sum(map(mul, rbs, rbs)) / 42))
            mr, mb = sum(rs) / 42, sum(rbs) / 42
            dr = [x - mr for x in rs]
            db = [x - mb for x in rbs]
            cov = sum(map(mul, dr, db)) / 42
            vr = sum(map(mul, dr, dr)) / 42
            vb = sum(map(mul, db, db)) / 42
            flat_b = _flat(math.sqrt(vb), mb)
            flat_r = _flat(math.sqrt(vr), mr)
            f.append(NAN if flat_b else _div(cov, vb))
            f.append(NAN if (flat_b or flat_r) else _div(cov, math.sqrt(vr * vb)))
        else:
            f.extend((NAN, NAN, NAN))
        f.append(ret6 - btc6)
        assert len(f) == spec.N_FEATURES
