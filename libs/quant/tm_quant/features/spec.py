"""Feature definitions shared by the batch and the incremental paths: names, windows, input types.

Notation: bar ``i`` has open time ``ts_i`` (ms UTC), close time ``ts_i + BAR_MS`` and prices
``o, h, l, c`` (USDT), base volume ``v``. ``r_i = ln(c_i / c_{i-1})`` is the 1-bar log return
(bar to bar: the one missing bar in the data makes one return span 8 h; no gap filling).
Every value in row ``i`` uses only data known at bar ``i``'s close (tested by
:func:`tm_quant.leakage.assert_no_lookahead`).

Features (``FEATURE_NAMES`` order; units in brackets):

- ``ret_k`` k in 1,2,3,6,12,24,42 = ``ln(c_i / c_{i-k})`` [log return; these are also the ROCs]
- ``rv_w`` w in 6,12,42,180 = ``sqrt(mean(r^2))`` over the last w returns [per-bar, decimal]
- ``rv_ratio_6_42`` = rv_6 / rv_42; ``parkinson_42`` = ``sqrt(mean(ln(h/l)^2) / (4 ln 2))`` (42 bars)
- ``garch_vol`` = GARCH(1,1)-t one-bar-ahead sigma after r_i (:mod:`tm_quant.garch`) [per-bar,
  decimal]; ``garch_rv_ratio`` = garch_vol / rv_42
- ``close_ema_k`` k in 12,26,72 = ``ln(c / EMA_k(c))``, EMA alpha = 2/(k+1) seeded with c_0
- ``macd`` = (EMA12 - EMA26) / c; ``macd_signal`` = EMA9(macd) seeded with macd_0;
  ``macd_hist`` = macd - macd_signal
- ``rsi_14`` [0, 100]: Wilder averages (alpha 1/14, seeded with the first change) of gains and
  losses, ``100 * g / (g + l)``; 50 when both are 0
- ``stoch_k_14`` [0, 1] = (c - min l) / (max h - min l) over 14 bars (0.5 if flat);
  ``stoch_d_3`` = mean of the last 3 stoch_k
- ``bb_pctb_20`` = (c - m + 2s) / (4s), ``bb_width_20`` = 4s / m, m and s the mean and population
  std of the last 20 closes (pctb 0.5 if s = 0)
- ``atr_ratio_14`` = ATR / c, ATR = Wilder average (alpha 1/14, seeded with TR_0 = h_0 - l_0) of
  the true range
- ``volume_z_w`` w in 20,42: z-score of ``ln(1 + v)`` over w bars (population std; 0 if flat);
  ``volume_ratio_6_42`` = mean6 - mean42 of ``ln(1 + v)``
- ``hl_range`` = ln(h / l); ``close_location`` = (c - l) / (h - l) (0.5 if h = l); ``body`` = ln(c / o)
- ``hour_sin/cos`` (hour of the open time / 24), ``dow_sin/cos`` (Monday = 0, / 7)
- ``dvol_level`` = D / 100 (BTC 30-day implied vol, annualised decimal), D = the last DVOL daily
  close known at the bar's close (row for day d known at d + 1 day, ``DVOL_DELAY_MS``);
  ``dvol_chg_6`` = ln(D_i / D_{i-6}); ``dvol_rv_spread`` = D / 100 - rv_42 * sqrt(BARS_PER_YEAR)
- ``funding_rate`` = last settled funding rate with settlement time <= bar close, per 8 h
  [decimal; Bybit quotes a rate per funding interval (8 h for BTC, ETH and SOL, 1, 2 or 4 h for
  others): a rate settled less than 8 h after the one before is scaled by 8 h / that gap, see
  :mod:`tm_quant.features.funding`]; ``funding_mean_18`` / ``funding_mean_42`` = its mean over
  the last 18 / 42 bars (3 / 7 days)
- BTC cross (for ETH, SOL; NaN when no BTC bars are given, e.g. for BTC itself): B_i = close of the
  last BTC bar with open time <= ts_i (carried forward over a missing BTC bar): ``btc_ret_1``,
  ``btc_ret_6`` (log returns of B), ``btc_rv_42``, ``beta_btc_42`` = cov(r, r_B) / var(r_B) and
  ``corr_btc_42`` over 42 bars (population moments), ``rel_ret_6`` = ret_6 - btc_ret_6

Missing optional inputs (no DVOL yet, no funding, no BTC) give NaN in their features only; the
whole row is NaN (batch) / ``None`` (incremental) for the first ``WARMUP_BARS - 1`` bars.
"""

from __future__ import annotations

import math
from typing import NamedTuple

BAR_MS = 4 * 3_600_000
DAY_MS = 86_400_000
#: A DVOL row stamped day d (00:00 UTC) is the close of that day's candle: known at d + 1 day.
DVOL_DELAY_MS = DAY_MS
#: A funding row is stamped with its settlement time, at which the rate is known.
FUNDING_DELAY_MS = 0
BARS_PER_YEAR = 6 * 365

RET_LAGS = (1, 2, 3, 6, 12, 24, 42)
RV_WINDOWS = (6, 12, 42, 180)
EMA_SPANS = (12, 26, 72)
#: Rows before this many bars are warm-up (the longest window, rv_180, needs 181 closes; the
#: rest gives EMA72 a few spans to forget its seed).
WARMUP_BARS = 200

# Numerical floor under which a dispersion counts as zero: avoids dividing rounding noise
# (a window of identical values has a computed std of ~1e-17, not 0).
REL_EPS = 1e-12

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{k}" for k in RET_LAGS),
    *(f"rv_{w}" for w in RV_WINDOWS),
    "rv_ratio_6_42", "parkinson_42",
    "garch_vol", "garch_rv_ratio",
    *(f"close_ema_{k}" for k in EMA_SPANS),
    "macd", "macd_signal", "macd_hist",
    "rsi_14", "stoch_k_14", "stoch_d_3", "bb_pctb_20", "bb_width_20", "atr_ratio_14",
    "volume_z_20", "volume_z_42", "volume_ratio_6_42",
    "hl_range", "close_location", "body",
    "hour_sin", "hour_cos", "dow_sin", "dow_cos",
    "dvol_level", "dvol_chg_6", "dvol_rv_spread",
    "funding_rate", "funding_mean_18", "funding_mean_42",
    "btc_ret_1", "btc_ret_6", "btc_rv_42", "beta_btc_42", "corr_btc_42", "rel_ret_6",
)
N_FEATURES = len(FEATURE_NAMES)
INDEX = {name: j for j, name in enumerate(FEATURE_NAMES)}

TWO_PI = 2.0 * math.pi
FOUR_LN2 = 4.0 * math.log(2.0)
ANNUALISE = math.sqrt(BARS_PER_YEAR)


class Bar(NamedTuple):
    """One closed bar: ``ts_ms`` is the **open** time (ms UTC); prices USDT; volume base units."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def calendar(ts_ms: int) -> tuple[float, float, float, float]:
    """(hour_sin, hour_cos, dow_sin, dow_cos) of a bar's open time; Monday = 0."""
    hour = (ts_ms // 3_600_000) % 24
    dow = (ts_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
    a, b = TWO_PI * hour / 24.0, TWO_PI * dow / 7.0
    return math.sin(a), math.cos(a), math.sin(b), math.cos(b)
