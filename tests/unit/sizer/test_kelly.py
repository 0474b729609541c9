"""Kelly: caps, zero without an edge, sign, regime scaling; the rolling win/loss ratio."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_quant.sizing.kelly import (
    DEFAULT_REGIME_FRACTIONS,
    KellyParams,
    kelly_fraction,
    win_loss_ratio,
)

probs = st.floats(0.0, 1.0)
bs = st.floats(0.01, 100.0)
fracs = st.floats(0.0, 1.0)
caps = st.floats(0.0, 1.0)
dirs = st.sampled_from([-1, 0, 1])


@settings(max_examples=400, deadline=None)
@given(probs, dirs, bs, fracs, caps)
def test_within_caps_and_signed_by_direction(p, d, b, rf, cap):
    f = kelly_fraction(p, d, b, rf, cap)
    assert math.isfinite(f)
    assert abs(f) <= cap + 1e-15
    assert abs(f) <= max(0.0, rf) + 1e-15          # never more than the regime's share of 1
    if f != 0:
        assert math.copysign(1, f) == d


@settings(max_examples=400, deadline=None)
@given(probs, dirs, bs, fracs, caps)
def test_zero_when_edge_is_not_positive(p, d, b, rf, cap):
    pw = p if d > 0 else 1 - p
    if d == 0 or pw - (1 - pw) / b <= 0:
        assert kelly_fraction(p, d, b, rf, cap) == 0.0


@settings(max_examples=200, deadline=None)
@given(probs, st.sampled_from([-1, 1]), bs, fracs, fracs)
def test_more_cautious_regime_never_bets_more(p, d, b, rf1, rf2):
    lo, hi = sorted((rf1, rf2))
    assert abs(kelly_fraction(p, d, b, lo, 1.0)) <= abs(kelly_fraction(p, d, b, hi, 1.0)) + 1e-15


def test_hand_computed_values():
    # p = 0.6, b = 1: f* = 0.6 - 0.4 = 0.2; Bull 0.67 → 0.134; short with P(up) = 0.4 is the mirror
    assert kelly_fraction(0.6, 1, 1.0, 0.67, 0.25) == pytest.approx(0.134)
    assert kelly_fraction(0.4, -1, 1.0, 0.67, 0.25) == pytest.approx(-0.134)
    # p = 0.55, b = 2: f* = 0.55 - 0.225 = 0.325; Neutral 0.5 → 0.1625
    assert kelly_fraction(0.55, 1, 2.0, 0.5, 0.25) == pytest.approx(0.1625)
    assert kelly_fraction(0.9, 1, 3.0, 1.0, 0.25) == 0.25                 # capped
    assert kelly_fraction(0.6, -1, 1.0, 0.67, 0.25) == 0.0                # short against P(up)
    assert kelly_fraction(0.5, 1, 1.0, 0.67, 0.25) == 0.0                 # no edge
    for bad in (math.nan, math.inf):
        assert kelly_fraction(bad, 1, 1.0, 0.5, 0.25) == 0.0
        assert kelly_fraction(0.7, 1, bad, 0.5, 0.25) == 0.0


def test_regime_fractions_default_and_config():
    kp = KellyParams()
    assert DEFAULT_REGIME_FRACTIONS == {"Bull": 0.67, "Neutral": 0.5, "Bear": 0.25, "Crisis": 0.17}
    assert kp.regime_fraction("Bear") == 0.25
    assert kp.regime_fraction(None) == 0.17            # unknown → most cautious
    custom = KellyParams(regime_fractions={"Bull": 1.0, "Neutral": 0.3, "Bear": 0.2,
                                           "Crisis": 0.0})
    assert custom.regime_fraction("Bull") == 1.0
    with pytest.raises(ValueError):
        KellyParams(regime_fractions={"Bull": 1.5, "Neutral": 0.3, "Bear": 0.2, "Crisis": 0.0})
    with pytest.raises(ValueError):
        KellyParams(regime_fractions={"Bull": 0.5})
    with pytest.raises(ValueError):
        KellyParams(max_fraction=1.5)


def test_win_loss_ratio_prior_shrinkage_and_clip():
    kp = KellyParams(prior_b=1.0, prior_weight=20, min_each=5, b_min=0.25, b_max=4.0)
    assert win_loss_ratio([], kp) == 1.0
    assert win_loss_ratio([0.02] * 30, kp) == 1.0                   # no losses yet: prior
    outcomes = [0.02] * 10 + [-0.01] * 10                           # empirical 2.0
    assert win_loss_ratio(outcomes, kp) == pytest.approx((20 * 2.0 + 20 * 1.0) / 40)
    assert win_loss_ratio([0.5] * 500 + [-0.001] * 500, kp) == 4.0  # clipped
    assert win_loss_ratio([0.0] * 50, kp) == 1.0                    # zeros ignored


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2), max_size=300))
def test_win_loss_ratio_is_bounded(outcomes):
    kp = KellyParams()
    assert kp.b_min <= win_loss_ratio(outcomes, kp) <= kp.b_max
