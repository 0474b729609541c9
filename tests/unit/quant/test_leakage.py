"""Look-ahead detector: the real features pass; deliberately leaky ones are caught."""

from __future__ import annotations

import numpy as np
import pytest
from tm_quant.features import BAR_MS, WARMUP_BARS, compute_batch
from tm_quant.features.spec import DAY_MS
from tm_quant.leakage import LookaheadError, assert_no_lookahead

N_BARS = 2400  # covers the DVOL start (2022-11-07, row ~1860) and ~540 bars with DVOL


@pytest.fixture(scope="module")
def data(market):
    return {
        "bars": market.bars("ETHUSDT").iloc[:N_BARS],
        "dvol": market.dvol(),
        "funding": market.funding("ETHUSDT"),
        "btc_bars": market.bars("BTCUSDT").iloc[:N_BARS],
    }


def checkpoints(bars) -> list[int]:
    """Warm-up edge, a bar closing at 00:00 (new DVOL day), one at a funding settlement, the end."""
    ts = bars["timestamp"].to_numpy()
    close_hour = ((ts + BAR_MS) // 3_600_000) % 24
    with_dvol = np.arange(len(ts)) > 1900
    midnight = np.flatnonzero(with_dvol & (close_hour == 0))[:2].tolist()
    settle = np.flatnonzero(with_dvol & (close_hour == 8))[:1].tolist()
    return [WARMUP_BARS - 1, WARMUP_BARS + 50, 1000, *midnight, *settle, len(ts) - 1]


def test_real_features_have_no_lookahead(data):
    points = checkpoints(data["bars"])
    assert len(points) >= 7
    checked = assert_no_lookahead(compute_batch, data, points)
    assert checked == len(points) * 49


def test_future_shifted_feature_is_caught(data):
    def leaky(**kw):
        X, names = compute_batch(**kw)
        c = np.asarray(kw["bars"]["close"], dtype=float)
        nxt = np.full_like(c, np.nan)
        nxt[:-1] = np.log(c[1:] / c[:-1])  # next bar's return: one bar into the future
        return np.column_stack([X, nxt]), [*names, "leak_next_ret"]

    with pytest.raises(LookaheadError, match="leak_next_ret"):
        assert_no_lookahead(leaky, data, [WARMUP_BARS + 10])


def test_unshifted_dvol_is_caught(data):
    """Joining DVOL at its day stamp (forgetting the one-day delay) uses a value not yet known."""
    def leaky(**kw):
        dv = dict(kw["dvol"])
        dv["timestamp"] = dv["timestamp"] - DAY_MS  # cancels compute_batch's shift
        return compute_batch(kw["bars"], dvol=dv, funding=kw["funding"], btc_bars=kw["btc_bars"])

    with pytest.raises(LookaheadError, match="dvol_level"):
        assert_no_lookahead(leaky, data, checkpoints(data["bars"]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # nanstd of all-NaN warm-up columns
def test_whole_sample_normalisation_is_caught(data):
    def leaky(**kw):
        X, names = compute_batch(**kw)
        return (X - np.nanmean(X, axis=0)) / np.nanstd(X, axis=0), names

    with pytest.raises(LookaheadError):
        assert_no_lookahead(leaky, data, [WARMUP_BARS + 10, N_BARS - 500])


def test_centred_window_is_caught(data):
    def leaky(**kw):
        c = np.asarray(kw["bars"]["close"], dtype=float)
        return np.convolve(c, np.ones(5) / 5, mode="same")  # uses 2 bars ahead

    with pytest.raises(LookaheadError, match="col0"):
        assert_no_lookahead(leaky, data, [100])


def test_detector_needs_a_delay_for_every_table(data):
    with pytest.raises(KeyError, match="extra"):
        assert_no_lookahead(compute_batch, {**data, "extra": data["dvol"]}, [300])
