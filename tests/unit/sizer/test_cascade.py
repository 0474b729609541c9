"""Cascade: exactly one tier per input, breaker OPEN first for every tier, thresholds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_quant.sizing.cascade import TIERS, CascadeInput, CascadeThresholds, decide

MAX = 0.25
breakers = st.sampled_from([None, "CLOSED", "OPEN", "HALF_OPEN"])
conf = st.one_of(st.floats(0.0, 1.0), st.just(math.nan), st.sampled_from([0.3, 0.4, 0.5]))
ics = st.one_of(st.none(), st.floats(-1.0, 1.0), st.just(math.nan), st.just(0.05))
fractions = st.floats(-MAX, MAX)
rls = st.one_of(st.none(), fractions, st.just(math.nan))
inputs = st.builds(CascadeInput, breakers, conf, ics, fractions, rls)
# Any thresholds, ordered or not: the tiers must still partition the inputs.
thresholds = st.builds(CascadeThresholds, st.floats(0, 1), st.floats(-1, 1), st.floats(0, 1),
                       st.floats(0, 1))


def oracle(i: CascadeInput, th: CascadeThresholds) -> set[str]:
    """Which tiers' conditions hold, written independently as mutually exclusive predicates."""
    c = i.confidence if math.isfinite(i.confidence) else 0.0
    ic_ok = i.live_ic is not None and math.isfinite(i.live_ic) and i.live_ic >= th.full_rl_min_ic
    rl_ok = i.rl_fraction is not None and math.isfinite(i.rl_fraction)
    open_ = i.breaker_state == "OPEN"
    full = not open_ and c >= th.full_rl_confidence and ic_ok and rl_ok
    preds = {
        "EMERGENCY_FLAT": open_,
        "FULL_RL": full,
        "BLENDED": not open_ and not full and c >= th.blended_confidence,
        "PURE_KELLY": not open_ and not full and th.kelly_confidence <= c < th.blended_confidence,
        "FLAT": not open_ and not full and c < th.kelly_confidence and c < th.blended_confidence,
    }
    return {k for k, v in preds.items() if v}


@settings(max_examples=500, deadline=None)
@given(inputs, thresholds)
def test_every_input_lands_in_exactly_one_tier(i, th):
    d = decide(i, th)
    assert d.tier in TIERS
    assert oracle(i, th) == {d.tier}
    assert math.isfinite(d.target_fraction) and abs(d.target_fraction) <= MAX + 1e-12
    assert d.reason


@settings(max_examples=500, deadline=None)
@given(inputs, thresholds)
def test_breaker_open_means_flat_for_every_input(i, th):
    forced = CascadeInput("OPEN", i.confidence, i.live_ic, i.kelly_fraction, i.rl_fraction)
    d = decide(forced, th)
    assert d.tier == "EMERGENCY_FLAT" and d.target_fraction == 0.0


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_half_open_passes_through(i):
    closed = decide(CascadeInput("CLOSED", i.confidence, i.live_ic, i.kelly_fraction, i.rl_fraction))
    half = decide(CascadeInput("HALF_OPEN", i.confidence, i.live_ic, i.kelly_fraction,
                               i.rl_fraction))
    assert (half.tier, half.target_fraction) == (closed.tier, closed.target_fraction)


def test_open_breaker_beats_every_lower_tier():
    # The original design checked the breaker in tier 1 only: a Kelly-tier input still traded.
    for c in (0.95, 0.45, 0.35, 0.1):
        d = decide(CascadeInput("OPEN", c, 0.2, 0.2, 0.1))
        assert (d.tier, d.target_fraction) == ("EMERGENCY_FLAT", 0.0)


@pytest.mark.parametrize(("c", "ic", "rl", "tier", "target"), [
    (0.55, 0.10, 0.2, "FULL_RL", 0.2),
    (0.50, 0.05, 0.2, "FULL_RL", 0.2),                     # thresholds are inclusive
    (0.55, 0.01, 0.2, "BLENDED", 0.5 * 0.2 + 0.5 * 0.1),   # IC too low
    (0.55, None, 0.2, "BLENDED", 0.15),                     # no live IC yet
    (0.55, 0.10, None, "BLENDED", 0.1),                     # no passed policy: Kelly alone
    (0.45, 0.10, 0.2, "BLENDED", 0.15),
    (0.40, 0.10, None, "BLENDED", 0.1),
    (0.35, 0.10, 0.2, "PURE_KELLY", 0.1),
    (0.30, 0.10, 0.2, "PURE_KELLY", 0.1),
    (0.29, 0.10, 0.2, "FLAT", 0.0),
])
def test_tiers_by_example(c, ic, rl, tier, target):
    d = decide(CascadeInput("CLOSED", c, ic, 0.1, rl))
    assert d.tier == tier and d.target_fraction == pytest.approx(target)
    if tier == "BLENDED" and rl is None:
        assert "Kelly alone" in d.reason


def test_thresholds_are_configurable_and_validated():
    th = CascadeThresholds(full_rl_confidence=0.2, full_rl_min_ic=0.0, blended_confidence=0.1,
                           kelly_confidence=0.05)
    assert decide(CascadeInput(None, 0.25, 0.0, 0.1, 0.2), th).tier == "FULL_RL"
    assert decide(CascadeInput(None, 0.07, 0.0, 0.1, 0.2), th).tier == "PURE_KELLY"
    with pytest.raises(ValueError):
        CascadeThresholds(full_rl_confidence=1.5)
