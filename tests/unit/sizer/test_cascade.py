"""Cascade: exactly one tier per input, breaker OPEN first for every tier, thresholds, and a
live IC that must be significantly positive before anything beyond the Kelly tier follows the
signal (significantly negative: flat)."""

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
counts = st.one_of(st.integers(0, 400), st.sampled_from([0, 2, 3, 20, 60]))
inputs = st.builds(CascadeInput, breakers, conf, ics, fractions, rls, counts)
# Any thresholds, ordered or not: the tiers must still partition the inputs.
thresholds = st.builds(CascadeThresholds, st.floats(0, 1), st.floats(-1, 1), st.floats(0, 1),
                       st.floats(0, 1), st.floats(0.01, 4))


def oracle(i: CascadeInput, th: CascadeThresholds) -> set[str]:
    """Which tiers' conditions hold, written independently as mutually exclusive predicates."""
    c = i.confidence if math.isfinite(i.confidence) else 0.0
    ic = i.live_ic if i.live_ic is not None and math.isfinite(i.live_ic) else None
    t = None
    if ic is not None and i.live_ic_n >= 3:
        t = math.copysign(math.inf, ic) if abs(ic) >= 1 else \
            ic * math.sqrt((i.live_ic_n - 2) / (1 - ic * ic))
    pos = t is not None and t >= th.ic_significance_z
    neg = t is not None and t <= -th.ic_significance_z
    rl_ok = i.rl_fraction is not None and math.isfinite(i.rl_fraction)
    open_ = i.breaker_state == "OPEN"
    live = not open_ and not neg
    full = live and c >= th.full_rl_confidence and ic is not None and ic >= th.full_rl_min_ic \
        and pos and rl_ok
    preds = {
        "EMERGENCY_FLAT": open_,
        "FULL_RL": full,
        "BLENDED": live and not full and pos and c >= th.blended_confidence,
        "PURE_KELLY": live and not full and not (pos and c >= th.blended_confidence)
        and c >= min(th.kelly_confidence, th.blended_confidence),
        "FLAT": (not open_ and neg) or (live and not full and c < th.kelly_confidence
                                        and c < th.blended_confidence),
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
    forced = CascadeInput("OPEN", i.confidence, i.live_ic, i.kelly_fraction, i.rl_fraction,
                          i.live_ic_n)
    d = decide(forced, th)
    assert d.tier == "EMERGENCY_FLAT" and d.target_fraction == 0.0


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_half_open_passes_through(i):
    closed = decide(CascadeInput("CLOSED", i.confidence, i.live_ic, i.kelly_fraction,
                                 i.rl_fraction, i.live_ic_n))
    half = decide(CascadeInput("HALF_OPEN", i.confidence, i.live_ic, i.kelly_fraction,
                               i.rl_fraction, i.live_ic_n))
    assert (half.tier, half.target_fraction) == (closed.tier, closed.target_fraction)


def test_open_breaker_beats_every_lower_tier():
    # The original design checked the breaker in tier 1 only: a Kelly-tier input still traded.
    for c in (0.95, 0.45, 0.35, 0.1):
        d = decide(CascadeInput("OPEN", c, 0.2, 0.2, 0.1))
        assert (d.tier, d.target_fraction) == ("EMERGENCY_FLAT", 0.0)


# n = 60 matured predictions: IC 0.25 → t 1.96 (significant at 1.645); 0.10 → t 0.76 (not).
@pytest.mark.parametrize(("c", "ic", "n", "rl", "tier", "target"), [
    (0.55, 0.25, 60, 0.2, "FULL_RL", 0.2),
    (0.50, 0.25, 60, 0.2, "FULL_RL", 0.2),                   # thresholds are inclusive
    (0.55, 0.25, 60, None, "BLENDED", 0.1),                  # no passed policy: Kelly alone
    (0.45, 0.25, 60, 0.2, "BLENDED", 0.15),
    (0.40, 0.25, 60, None, "BLENDED", 0.1),
    (0.55, 0.10, 60, 0.2, "PURE_KELLY", 0.1),                # IC not significant: capped
    (0.55, 0.25, 10, 0.2, "PURE_KELLY", 0.1),                # too few matured predictions
    (0.55, None, 0, 0.2, "PURE_KELLY", 0.1),                 # no live IC yet
    (0.90, -0.10, 60, 0.2, "PURE_KELLY", 0.1),               # negative, not significantly
    (0.90, -0.30, 60, 0.2, "FLAT", 0.0),                     # significantly negative: flat
    (0.35, -0.30, 60, 0.2, "FLAT", 0.0),
    (0.35, 0.25, 60, 0.2, "PURE_KELLY", 0.1),
    (0.30, 0.10, 60, 0.2, "PURE_KELLY", 0.1),
    (0.29, 0.25, 60, 0.2, "FLAT", 0.0),
])
def test_tiers_by_example(c, ic, n, rl, tier, target):
    d = decide(CascadeInput("CLOSED", c, ic, 0.1, rl, n))
    assert d.tier == tier and d.target_fraction == pytest.approx(target), d.reason
    if tier == "BLENDED" and rl is None:
        assert "Kelly alone" in d.reason
    if tier == "FLAT" and ic is not None and ic < 0:
        assert "significantly negative" in d.reason and "not followed" in d.reason
    if tier == "PURE_KELLY" and c >= 0.4:
        assert "capped at PURE_KELLY" in d.reason


def test_the_issue_case_anti_predictive_signal_never_blends():
    """Confidence 0.9 with a live IC of −0.3 was BLENDED in the signal's direction."""
    d = decide(CascadeInput("CLOSED", 0.9, -0.3, 0.2, 0.25, 60))
    assert (d.tier, d.target_fraction) == ("FLAT", 0.0)
    d = decide(CascadeInput("CLOSED", 0.9, -0.018, 0.2, 0.25, 60))      # the forced replay's IC
    assert d.tier == "PURE_KELLY" and d.target_fraction == 0.2 and d.rl_fraction == 0.25


def test_thresholds_are_configurable_and_validated():
    th = CascadeThresholds(full_rl_confidence=0.2, full_rl_min_ic=0.0, blended_confidence=0.1,
                           kelly_confidence=0.05)
    assert decide(CascadeInput(None, 0.25, 0.3, 0.1, 0.2, 60), th).tier == "FULL_RL"
    assert decide(CascadeInput(None, 0.07, 0.3, 0.1, 0.2, 60), th).tier == "PURE_KELLY"
    lax = CascadeThresholds(ic_significance_z=0.5)                   # 0.10 over 60: t 0.76
    assert decide(CascadeInput(None, 0.55, 0.10, 0.1, 0.2, 60), lax).tier == "FULL_RL"
    with pytest.raises(ValueError):
        CascadeThresholds(full_rl_confidence=1.5)
    with pytest.raises(ValueError, match="must be > 0"):
        CascadeThresholds(ic_significance_z=0.0)
