"""``tm_quant.checks.check_range``: inclusive bounds, NaN refused, the message names the field,
the range and the value; the parameter objects that use it keep their messages."""

from __future__ import annotations

import math

import pytest
from tm_quant.checks import check_range
from tm_quant.regime import KellyFractions
from tm_quant.sizing.cascade import CascadeThresholds
from tm_quant.sizing.kelly import KellyParams


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_bounds_are_inclusive(value):
    check_range("x", value, 0.0, 1.0)


@pytest.mark.parametrize("value, lo, hi, text", [
    (1.5, 0.0, 1.0, "x must be in [0, 1], got 1.5"),
    (-2, -1.0, 1.0, "x must be in [-1, 1], got -2"),
    (math.nan, 0.0, 1.0, "x must be in [0, 1], got nan"),
])
def test_out_of_range_names_field_range_and_value(value, lo, hi, text):
    with pytest.raises(ValueError) as e:
        check_range("x", value, lo, hi)
    assert str(e.value) == text


@pytest.mark.parametrize("build, text", [
    (lambda: KellyFractions(bear=-0.1), "Kelly fraction bear must be in [0, 1], got -0.1"),
    (lambda: CascadeThresholds(blended_confidence=1.2), "blended_confidence must be in [0, 1], got 1.2"),
    (lambda: CascadeThresholds(full_rl_min_ic=-2.0), "full_rl_min_ic must be in [-1, 1], got -2.0"),
    (lambda: KellyParams(max_fraction=1.5), "max_fraction must be in [0, 1], got 1.5"),
    (lambda: KellyParams(regime_fractions={"Bull": 2.0, "Neutral": 0.5, "Bear": 0.25, "Crisis": 0.1}),
     "regime fraction Bull must be in [0, 1], got 2.0"),
])
def test_parameter_objects_refuse_out_of_range_values(build, text):
    with pytest.raises(ValueError) as e:
        build()
    assert str(e.value) == text
