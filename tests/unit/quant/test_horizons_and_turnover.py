"""Issue 16 part 4: named horizons, vol-scaled labels, and positions whose turnover stays
within a stated budget (hysteresis + a minimum holding time)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_quant.features import BARS_PER_YEAR
from tm_quant.labels import forward_log_return, parse_horizon, vol_scaled_return
from tm_quant.turnover import (
    hold_bars_for,
    position_pnl,
    smoothed_positions,
    turnover_per_year,
)


@pytest.mark.parametrize(("text", "bars"), [("1d", 6), ("3d", 18), ("1w", 42), ("1W", 42),
                                            ("12", 12), (6, 6)])
def test_named_horizons(text, bars):
    assert parse_horizon(text) == bars


@pytest.mark.parametrize("bad", ["0", "2d", "-6", "1.5", ""])
def test_a_bad_horizon_is_one_clear_line(bad):
    with pytest.raises(ValueError, match=r"use 1d, 3d, 1w or a whole number of 4 h bars >= 1"):
        parse_horizon(bad)


def test_vol_scaled_labels_keep_the_sign_and_put_moves_on_one_scale():
    close = np.array([100.0, 101, 99, 102, 103, 100, 104])
    fwd = forward_log_return(close, 3)
    vol = np.array([0.01, 0.02, 0.0, np.nan, 0.01, 0.01, 0.01])
    z = vol_scaled_return(fwd, vol, 3)
    assert z[0] == pytest.approx(fwd[0] / (0.01 * math.sqrt(3)))
    assert z[1] == pytest.approx(fwd[1] / (0.02 * math.sqrt(3)))
    assert np.isnan(z[2]) and np.isnan(z[3])            # no usable volatility
    assert np.all(np.isnan(z[-3:]))                      # no label yet
    ok = np.isfinite(z)
    assert np.array_equal(np.sign(z[ok]), np.sign(fwd[ok]))


def test_hysteresis_and_holding_by_example():
    p = np.array([0.52, 0.49, 0.56, 0.5, 0.44, 0.46, np.nan, 0.40, 0.60])
    assert smoothed_positions(p).tolist() == [1, -1, 1, 1, -1, -1, -1, -1, 1]
    assert smoothed_positions(p, band=0.05).tolist() == [0, 0, 1, 1, -1, -1, -1, -1, 1]
    assert smoothed_positions(p, hold_bars=3).tolist() == [1, 1, 1, 1, -1, -1, -1, -1, 1]
    assert smoothed_positions(p, hold_bars=5).tolist() == [1, 1, 1, 1, 1, -1, -1, -1, -1]
    assert hold_bars_for(BARS_PER_YEAR * 2) == 1 and hold_bars_for(52) == math.ceil(4380 / 52)
    with pytest.raises(ValueError, match="turnover budget must be a positive number"):
        hold_bars_for(0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=600), st.sampled_from([12.0, 52.0, 200.0]),
       st.sampled_from([0.0, 0.02]))
def test_turnover_stays_within_the_budget_whatever_the_predictions(ps, budget, band):
    pos = smoothed_positions(np.array(ps), band=band, hold_bars=hold_bars_for(budget))
    n = len(ps)
    assert turnover_per_year(pos) <= budget + 2 * BARS_PER_YEAR / n + 1e-9


def test_an_alternating_signal_costs_less_smoothed():
    rng = np.random.default_rng(0)
    p = 0.5 + 0.01 * np.where(np.arange(2190) % 2 == 0, 1, -1) + 0.001 * rng.normal(size=2190)
    ret = 0.01 * rng.normal(size=2190)
    raw = np.sign(p - 0.5)
    smooth = smoothed_positions(p, hold_bars=hold_bars_for(52))
    assert turnover_per_year(raw) > 4000 and turnover_per_year(smooth) <= 52 + 2
    assert position_pnl(smooth, ret, 0.00075).sum() > position_pnl(raw, ret, 0.00075).sum()
