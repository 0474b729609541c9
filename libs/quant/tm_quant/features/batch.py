"""Vectorised features over a whole history (trainer path). Definitions: :mod:`.spec`.

Windows are numpy sliding views and recursions (EMAs, Wilder averages, GARCH) are plain loops with
the same arithmetic as :class:`~tm_quant.features.incremental.IncrementalFeatures`, so the two
paths agree to rounding (tested to 1e-9 relative on the real bars).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tm_quant.features.align import asof_series, column
from tm_quant.features.funding import asof_per_8h
from tm_quant.features.spec import (
    ANNUALISE,
    BAR_MS,
    DVOL_DELAY_MS,
    EMA_SPANS,
    FEATURE_NAMES,
    FOUR_LN2,
    INDEX,
    N_FEATURES,
    REL_EPS,
    RET_LAGS,
    RV_WINDOWS,
    WARMUP_BARS,
    calendar,
)
from tm_quant.garch import DEFAULT_GARCH_PARAMS, GarchFilter, GarchParams

NAN = float("nan")


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[k:] = x[:-k]
    return out


def _roll(x: np.ndarray, w: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn`` (a reduction over axis 1) of each trailing window of length ``w``; NaN before."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= w:
        out[w - 1:] = fn(sliding_window_view(x, w))
    return out


def _mean(x: np.ndarray, w: int) -> np.ndarray:
    return _roll(x, w, lambda v: v.mean(axis=1))


def _mean_std(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and population std, two-pass (no sum-of-squares cancellation)."""
    m = _mean(x, w)
    s = np.full_like(m, np.nan)
    if x.shape[0] >= w:
        win = sliding_window_view(x, w)
        d = win - m[w - 1:, None]
        s[w - 1:] = np.sqrt((d * d).mean(axis=1))
    return m, s


def _flat(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    flat: np.ndarray = s <= REL_EPS * (np.abs(m) + 1.0)
    return flat


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with NaN where b == 0 (the incremental path cannot raise ZeroDivisionError)."""
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=(b != 0))
    return out


def _ema(x: np.ndarray, alpha: float, start: int = 0) -> np.ndarray:
    """y_i = alpha x_i + (1 - alpha) y_{i-1}, seeded y_start = x_start; NaN before ``start``."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] <= start:
        return out
    keep = 1.0 - alpha
    y = float(x[start])
    out[start] = y
    for i in range(start + 1, x.shape[0]):
        y = alpha * float(x[i]) + keep * y
        out[i] = y
    return out


def compute_batch(bars: Mapping[str, Any], dvol: Mapping[str, Any] | None = None,
                  funding: Mapping[str, Any] | None = None, btc_bars: Mapping[str, Any] | None = None,
                  *, garch_params: GarchParams | None = None) -> tuple[np.ndarray, list[str]]:
    """Feature matrix for every bar of one instrument.

    Args:
        bars: columns ``timestamp`` (bar open, int ms UTC, strictly increasing), ``open``, ``high``,
            ``low``, ``close`` (> 0, USDT), ``volume`` (>= 0, base units); a DataFrame or a dict
            of arrays.
        dvol: ``timestamp`` (day open, ms UTC) and ``dvol_close`` (percent); shifted by one day
            internally (``DVOL_DELAY_MS``). None → DVOL features NaN.
        funding: ``timestamp`` (settlement, ms UTC) and ``funding_rate`` (decimal per funding
            interval; read per 8 h, :mod:`tm_quant.features.funding`).
        btc_bars: BTC bars in the ``bars`` layout (only ``timestamp`` and ``close`` are read), for
            the cross features of ETH/SOL. None → cross features NaN.
        garch_params: percent-scaled GARCH parameters (default :data:`DEFAULT_GARCH_PARAMS`).

    Returns:
        ``(X, names)``: float64 array of shape ``(n_bars, len(FEATURE_NAMES))`` aligned with
        ``bars`` (rows ``< WARMUP_BARS - 1`` all NaN) and ``list(FEATURE_NAMES)``.

    Raises:
        ValueError: non-increasing timestamps or non-positive prices.
    """
    ts = column(bars, "timestamp")
    o, h, l, c = (column(bars, k) for k in ("open", "high", "low", "close"))
    v = column(bars, "volume")
    n = c.shape[0]
    if n > 1 and np.any(np.diff(ts) <= 0):
        raise ValueError("bar timestamps must be strictly increasing")
    if np.any(~(np.minimum(np.minimum(o, h), np.minimum(l, c)) > 0)):
        raise ValueError("bar prices must be > 0")
    X = np.full((n, N_FEATURES), np.nan)
    if n == 0:
        return X, list(FEATURE_NAMES)

    def put(name: str, values: np.ndarray) -> None:
        X[:, INDEX[name]] = values

    lc = np.log(c)
    r = lc - _lag(lc, 1)
    for k in RET_LAGS:
        put(f"ret_{k}", lc - _lag(lc, k))
    r2 = r * r
    rv = {w: np.sqrt(_mean(r2, w)) for w in RV_WINDOWS}
    for w in RV_WINDOWS:
        put(f"rv_{w}", rv[w])
    put("rv_ratio_6_42", _div(rv[6], rv[42]))
    hl = np.log(h / l)
    put("parkinson_42", np.sqrt(_mean(hl * hl, 42) / FOUR_LN2))

    gf = GarchFilter(garch_params or DEFAULT_GARCH_PARAMS)
    garch = np.full(n, np.nan)
    for i in range(1, n):
        garch[i] = gf.update(100.0 * float(r[i])) / 100.0
    put("garch_vol", garch)
    put("garch_rv_ratio", _div(garch, rv[42]))

    ema = {k: _ema(c, 2.0 / (k + 1)) for k in sorted({*EMA_SPANS, 12, 26})}
    for k in EMA_SPANS:
        put(f"close_ema_{k}", np.log(c / ema[k]))
    macd = (ema[12] - ema[26]) / c
    signal = _ema(macd, 2.0 / 10.0)
    put("macd", macd)
    put("macd_signal", signal)
    put("macd_hist", macd - signal)

    d = c - _lag(c, 1)
    g = _ema(np.maximum(d, 0.0), 1.0 / 14.0, start=1)
    ls = _ema(np.maximum(-d, 0.0), 1.0 / 14.0, start=1)
    gl = g + ls
    put("rsi_14", np.where(gl > 0, _div(100.0 * g, gl), np.where(np.isnan(gl), np.nan, 50.0)))

    hh = _roll(h, 14, lambda w: w.max(axis=1))
    ll = _roll(l, 14, lambda w: w.min(axis=1))
    rng = hh - ll
    stoch = np.where(rng > 0, _div(c - ll, rng), np.where(np.isnan(rng), np.nan, 0.5))
    put("stoch_k_14", stoch)
    put("stoch_d_3", _mean(stoch, 3))

    m20, s20 = _mean_std(c, 20)
    put("bb_pctb_20", np.where(_flat(s20, m20), 0.5, _div(c - m20 + 2.0 * s20, 4.0 * s20)))
    put("bb_width_20", _div(4.0 * s20, m20))

    pc = _lag(c, 1)
    tr = np.maximum(h - l, np.maximum(np.abs(h - pc), np.abs(l - pc)))
    tr[0] = h[0] - l[0]
    put("atr_ratio_14", _ema(tr, 1.0 / 14.0) / c)

    lv = np.log1p(v)
    for w in (20, 42):
        m, s = _mean_std(lv, w)
        put(f"volume_z_{w}", np.where(_flat(s, m), 0.0, _div(lv - m, s)))
    put("volume_ratio_6_42", _mean(lv, 6) - _mean(lv, 42))

    put("hl_range", hl)
    put("close_location", np.where(h > l, _div(c - l, h - l), 0.5))
    put("body", np.log(c / o))
    cal = np.array([calendar(int(t)) for t in ts], dtype=np.float64).reshape(n, 4)
    for j, name in enumerate(("hour_sin", "hour_cos", "dow_sin", "dow_cos")):
        put(name, cal[:, j])

    close_ms = ts + BAR_MS
    dv = asof_series(dvol, ("dvol_close", "value"), DVOL_DELAY_MS, close_ms)
    put("dvol_level", dv / 100.0)
    put("dvol_chg_6", np.log(dv / _lag(dv, 6)))
    put("dvol_rv_spread", dv / 100.0 - rv[42] * ANNUALISE)

    fr = asof_per_8h(funding, close_ms)
    put("funding_rate", fr)
    put("funding_mean_18", _mean(fr, 18))
    put("funding_mean_42", _mean(fr, 42))

    # BTC bar with open time <= this bar's open time: same close time or earlier.
    lb = np.log(asof_series(btc_bars, ("close",), 0, ts))
    rb = lb - _lag(lb, 1)
    btc6 = lb - _lag(lb, 6)
    put("btc_ret_1", rb)
    put("btc_ret_6", btc6)
    put("btc_rv_42", np.sqrt(_mean(rb * rb, 42)))
    beta, corr = _beta_corr(r, rb, 42)
    put("beta_btc_42", beta)
    put("corr_btc_42", corr)
    put("rel_ret_6", X[:, INDEX["ret_6"]] - btc6)

    X[: WARMUP_BARS - 1] = np.nan
    return X, list(FEATURE_NAMES)


def _beta_corr(r: np.ndarray, rb: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling beta of r on rb and their correlation (population moments, two-pass)."""
    beta = np.full(r.shape[0], np.nan)
    corr = np.full(r.shape[0], np.nan)
    if r.shape[0] < w:
        return beta, corr
    wr, wb = sliding_window_view(r, w), sliding_window_view(rb, w)
    dr = wr - wr.mean(axis=1)[:, None]
    db = wb - wb.mean(axis=1)[:, None]
    cov = (dr * db).mean(axis=1)
    vr = (dr * dr).mean(axis=1)
    vb = (db * db).mean(axis=1)
    mb = wb.mean(axis=1)
    flat_b = _flat(np.sqrt(vb), mb)
    flat_r = _flat(np.sqrt(vr), wr.mean(axis=1))
    beta[w - 1:] = np.where(flat_b, np.nan, _div(cov, vb))
    corr[w - 1:] = np.where(flat_b | flat_r, np.nan, _div(cov, np.sqrt(vr * vb)))
    return beta, corr
