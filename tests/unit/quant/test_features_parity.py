"""Batch == incremental features on the real shipped bars (with DVOL, funding and BTC cross)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_quant.features import (
    BAR_MS,
    DVOL_DELAY_MS,
    FEATURE_NAMES,
    WARMUP_BARS,
    Bar,
    IncrementalFeatures,
    compute_batch,
)
from tm_quant.features.funding import per_8h
from tm_quant.garch import GarchParams

RTOL, ATOL = 1e-9, 1e-12  # atol only for values that are zero up to rounding (e.g. sin(pi))


def run_incremental(bars: pd.DataFrame, dvol: pd.DataFrame | None, funding: pd.DataFrame | None,
                    btc: pd.DataFrame | None, *, dvol_delay_ms: int = DVOL_DELAY_MS,
                    garch_params: GarchParams | None = None) -> list[np.ndarray | None]:
    """Drive IncrementalFeatures the way a live service would: deliver each side-series row once
    it is known (pointer walk over raw rows, independent of the batch as-of join)."""
    inc = IncrementalFeatures(garch_params)
    dk = [] if dvol is None else list(dvol["timestamp"].to_numpy() + dvol_delay_ms)
    dv = [] if dvol is None else list(dvol["dvol_close"].to_numpy())
    fk = [] if funding is None else list(funding["timestamp"].to_numpy())
    fv = [] if funding is None else list(funding["funding_rate"].to_numpy())
    btc_by_ts = {} if btc is None else {int(r[0]): Bar(*r) for r in btc.itertuples(index=False)}
    di = fi = 0
    out = []
    for row in bars.itertuples(index=False):
        bar = Bar(*row)
        close_ms = bar.ts_ms + BAR_MS
        new_dvol = new_fund = None
        while di < len(dk) and dk[di] <= close_ms:
            new_dvol, di = dv[di], di + 1
        while fi < len(fk) and fk[fi] <= close_ms:      # per 8 h, as the signal service keeps it
            new_fund = per_8h(fv[fi], int(fk[fi]), int(fk[fi - 1]) if fi else None)
            fi += 1
        out.append(inc.update(bar, dvol=new_dvol, funding=new_fund, btc_bar=btc_by_ts.get(bar.ts_ms)))
    return out


def assert_same(rows: list[np.ndarray | None], X: np.ndarray) -> int:
    """Incremental rows equal batch rows (None exactly on the warm-up rows); returns the number of
    finite values compared."""
    assert len(rows) == X.shape[0]
    warm = [i for i, y in enumerate(rows) if y is None]
    assert warm == list(range(min(WARMUP_BARS - 1, len(rows))))
    assert np.isnan(X[: len(warm)]).all()
    Y = np.array([y for y in rows if y is not None]).reshape(-1, X.shape[1])
    B = X[len(warm):]
    ok = np.isclose(Y, B, rtol=RTOL, atol=ATOL, equal_nan=True)
    if not ok.all():
        i, j = np.argwhere(~ok)[0]
        bad = sorted({FEATURE_NAMES[k] for k in np.flatnonzero(~ok.all(axis=0))})
        raise AssertionError(f"{(~ok).sum()} values differ in {bad}; first at row {i + len(warm)} "
                             f"{FEATURE_NAMES[j]}: incremental {Y[i, j]!r} vs batch {B[i, j]!r}")
    return int(np.isfinite(Y).sum())


def test_feature_names_fixed_and_unique():
    assert 30 <= len(FEATURE_NAMES) <= 50
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


@pytest.mark.parametrize("sym", ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
def test_batch_equals_incremental_on_real_bars(market, sym):
    bars = market.bars(sym)
    btc = None if sym == "BTCUSDT" else market.bars("BTCUSDT")
    dvol, funding = market.dvol(), market.funding(sym)
    assert len(bars) >= 3000
    X, names = compute_batch(bars, dvol=dvol, funding=funding, btc_bars=btc)
    assert names == list(FEATURE_NAMES) and X.shape == (len(bars), len(FEATURE_NAMES))
    rows = run_incremental(bars, dvol, funding, btc)
    compared = assert_same(rows, X)
    # The comparison covers real numbers for every feature family, not NaN == NaN.
    live = X[WARMUP_BARS:]
    finite = np.isfinite(live).mean(axis=0)
    for name in ("dvol_level", "dvol_chg_6", "funding_rate", "funding_mean_42", "garch_vol", "rsi_14"):
        assert finite[FEATURE_NAMES.index(name)] > 0.5, name
    if btc is not None:
        assert finite[FEATURE_NAMES.index("corr_btc_42")] > 0.99
    assert compared > 0.8 * live.size


def test_funding_of_any_interval_is_read_per_8h_alike_in_both_paths(market):
    """An instrument on 8 h funding that Bybit moves to 1 h (its rate at the cap), then to 4 h,
    with a row missing: each rate is scaled by 8 h / the gap since the settlement before (a gap
    of 8 h or more, and the first rate, as they are), the same in batch and incremental; a
    constant 8 h-equivalent rate reads the same whatever the interval."""
    bars = market.bars("ETHUSDT").iloc[:WARMUP_BARS + 200]
    t0 = int(bars["timestamp"].iloc[WARMUP_BARS])               # after the warm-up: compared
    h = 3_600_000
    times = [t0 + 8 * h * k for k in range(1, 41)]                 # 8 h …
    times += [times[-1] + h * k for k in range(1, 161)]             # … then 1 h …
    times += [times[-1] + 4 * h * k for k in range(1, 61) if k != 30]   # … 4 h, one lost
    gaps = [8 * h] + [b - a for a, b in zip(times, times[1:], strict=False)]
    rates = [{8 * h: 0.0008, h: 0.0001}.get(g, 0.0004) for g in gaps]   # all 0.0008 per 8 h
    lost = gaps.index(8 * h, 41)     # the 4 h rate after the lost row: 8 h after the one before
    rates[lost] = 0.0004
    funding = pd.DataFrame({"timestamp": np.array(times, dtype=np.int64), "funding_rate": rates})
    X, _ = compute_batch(bars, funding=funding)
    assert_same(run_incremental(bars, None, funding, None), X)
    fr = X[:, FEATURE_NAMES.index("funding_rate")]
    known = np.round(fr[np.isfinite(fr)], 12)
    assert len(known) > 150
    # every bar reads 0.0008 per 8 h, but the one whose newest row follows the lost one: a gap
    # of 8 h is taken as it is (a missing row cannot be told from an 8 h interval)
    assert (known == 0.0004).sum() == 1 and set(known) == {0.0008, 0.0004}


def test_parity_check_catches_a_misaligned_feed(market):
    """Negative control: feeding DVOL at its stamp (no one-day shift) must break parity."""
    bars = market.bars("ETHUSDT").iloc[:2600]
    dvol = market.dvol()
    X, _ = compute_batch(bars, dvol=dvol)
    rows = run_incremental(bars, dvol, None, None, dvol_delay_ms=0)
    with pytest.raises(AssertionError):
        assert_same(rows, X)


def test_fitted_garch_params_flow_through_both_paths(market):
    bars = market.bars("BTCUSDT").iloc[:600]
    p = GarchParams(mu=0.01, omega=0.05, alpha=0.1, beta=0.85, nu=4.0, backcast=0.9)
    X, _ = compute_batch(bars, garch_params=p)
    assert_same(run_incremental(bars, None, None, None, garch_params=p), X)
    X_default, _ = compute_batch(bars)
    j = FEATURE_NAMES.index("garch_vol")
    assert not np.allclose(X[WARMUP_BARS:, j], X_default[WARMUP_BARS:, j])


def test_feature_ranges(market):
    X, _ = compute_batch(market.bars("ETHUSDT"), btc_bars=market.bars("BTCUSDT"))
    live = X[WARMUP_BARS:]
    col = {n: live[:, j] for j, n in enumerate(FEATURE_NAMES)}
    assert np.nanmin(col["rsi_14"]) >= 0 and np.nanmax(col["rsi_14"]) <= 100
    for n in ("stoch_k_14", "stoch_d_3", "close_location"):
        assert np.nanmin(col[n]) >= 0 and np.nanmax(col[n]) <= 1, n
    for n in ("hour_sin", "hour_cos", "dow_sin", "dow_cos"):
        assert np.nanmax(np.abs(col[n])) <= 1 + 1e-12
    assert np.nanmin(col["corr_btc_42"]) >= -1 and np.nanmax(col["corr_btc_42"]) <= 1
    assert (col["rv_42"] > 0).all() and (col["garch_vol"] > 0).all()


def test_incremental_rejects_bad_input():
    inc = IncrementalFeatures()
    inc.update(Bar(0, 1.0, 1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="not after"):
        inc.update(Bar(0, 1.0, 1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="non-positive"):
        inc.update(Bar(BAR_MS, 1.0, 1.0, 0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="look-ahead"):
        inc.update(Bar(2 * BAR_MS, 1.0, 1.0, 1.0, 1.0, 1.0), btc_bar=Bar(3 * BAR_MS, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError):
        compute_batch({"timestamp": [1, 1], "open": [1, 1], "high": [1, 1], "low": [1, 1],
                       "close": [1, 1], "volume": [1, 1]})


_steps = st.lists(st.sampled_from([0.0, 0.0, 0.001, -0.002, 0.01, -0.03, 0.05]),
                  min_size=WARMUP_BARS + 5, max_size=WARMUP_BARS + 60)


@settings(max_examples=15, deadline=None)
@given(steps=_steps, vols=st.sampled_from([0.0, 1.0, 123.4]), btc_lag=st.booleans())
def test_batch_equals_incremental_on_degenerate_paths(steps, vols, btc_lag):
    """Flat stretches (h == l, constant close, zero volume) exercise every zero-division guard."""
    n = len(steps)
    close = 100.0 * np.exp(np.cumsum(steps))
    ts = np.arange(n, dtype=np.int64) * BAR_MS
    bars = pd.DataFrame({"timestamp": ts, "open": close, "high": close, "low": close,
                         "close": close, "volume": np.full(n, vols)})
    keep = np.ones(n, bool)
    if btc_lag:
        keep[WARMUP_BARS // 2] = False  # a missing BTC bar: carried forward in both paths
    btc = bars[keep].assign(close=lambda d: d["close"] * 3.0)
    X, _ = compute_batch(bars, btc_bars=btc)
    assert_same(run_incremental(bars, None, None, btc), X)
