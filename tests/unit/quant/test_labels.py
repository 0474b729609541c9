"""Label alignment and Spearman IC."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr
from tm_quant.labels import forward_log_return, spearman_ic


def test_forward_return_alignment_by_hand():
    close = np.array([1.0, 2.0, 4.0, 8.0, 4.0])
    np.testing.assert_allclose(forward_log_return(close, 1)[:4], np.log([2, 2, 2, 0.5]))
    y2 = forward_log_return(close, 2)
    np.testing.assert_allclose(y2[:3], np.log([4, 4, 1]))
    assert np.isnan(y2[3:]).all()
    assert np.isnan(forward_log_return(close, 5)).all()


@pytest.mark.parametrize("h", [1, 6, 42])
def test_forward_return_on_real_bars(market, h):
    c = market.bars("BTCUSDT")["close"].to_numpy()
    y = forward_log_return(c, h)
    assert np.isnan(y[-h:]).all() and np.isfinite(y[:-h]).all()
    for t in (0, 1234, len(c) - h - 1):
        assert y[t] == pytest.approx(math.log(c[t + h] / c[t]), rel=1e-12)


def test_forward_return_rejects_bad_input():
    with pytest.raises(ValueError):
        forward_log_return(np.ones(5), 0)
    with pytest.raises(ValueError):
        forward_log_return(np.array([1.0, -1.0]), 1)


def test_spearman_known_values():
    x = np.array([1, 2, 3, 4, 5], dtype=float)
    assert spearman_ic(x, np.array([2, 1, 4, 3, 5.0])) == pytest.approx(0.8)  # 1 - 6*4/(5*24)
    assert spearman_ic(x, np.exp(x)) == pytest.approx(1.0)  # monotone, not linear
    assert spearman_ic(x, -(x**3)) == pytest.approx(-1.0)


def test_spearman_drops_nan_pairs_and_handles_degenerate_input():
    p = np.array([1, 2, np.nan, 4, 5, 6.0])
    r = np.array([10, 20, 30, np.nan, 50, 60.0])
    assert spearman_ic(p, r) == pytest.approx(1.0)
    assert math.isnan(spearman_ic([1, 2], [1, 2]))
    assert math.isnan(spearman_ic([1, 1, 1, 1], [1, 2, 3, 4]))
    with pytest.raises(ValueError):
        spearman_ic([1, 2, 3], [1, 2])


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(7)
    p = rng.integers(0, 20, 500).astype(float)
    r = p + rng.normal(0, 10, 500)
    assert spearman_ic(p, r) == pytest.approx(spearmanr(p, r).statistic, abs=1e-12)
