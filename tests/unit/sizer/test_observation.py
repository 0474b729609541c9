"""Observation layout and scaling; the paper book's arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tm_quant.sizing.observation import OBS_CLIP, OBS_DIM, OBS_SPEC, PaperBook, build_observation


def test_layout_and_scaling():
    v = build_observation(probability=0.7, confidence=0.4, live_ic=0.06,
                          regime_probs=(0.5, 0.3, 0.1, 0.1), volatility=0.012, position=-0.125,
                          returns=[0.01, -0.02, 0.005], drawdown=0.03, kelly=0.1, max_fraction=0.25)
    assert v.shape == (OBS_DIM,) and len(OBS_SPEC) == OBS_DIM
    expect = [0.4, 0.4, 0.3, 0.5, 0.3, 0.1, 0.1, 1.2, -0.5, 1.0, -2.0, 0.5, 0.3, 0.4]
    np.testing.assert_allclose(v, expect, atol=1e-12)


def test_missing_and_extreme_inputs():
    v = build_observation(probability=math.nan, confidence=math.nan, live_ic=None,
                          regime_probs=None, volatility=math.inf, position=0.0, returns=[0.5],
                          drawdown=0.0, kelly=0.0, max_fraction=0.25)
    assert np.isfinite(v).all() and (np.abs(v) <= OBS_CLIP).all()
    assert v[0] == 0.0 and v[3:7].tolist() == [0.25] * 4 and v[9] == OBS_CLIP
    assert v[10] == 0.0 and v[11] == 0.0


def test_paper_book():
    b = PaperBook()
    assert b.rebalance(0.2, 0.001) == pytest.approx(0.0002)
    assert b.equity == pytest.approx(0.9998) and b.peak == 1.0
    assert b.hold(0.05, funding_rate=0.0001) == pytest.approx(0.2 * 0.05 - 0.2 * 0.0001)
    b.hold(-0.5)
    assert b.drawdown == pytest.approx(1 - b.equity / b.peak) and b.drawdown > 0.09
    assert PaperBook.from_list(b.to_list()) == b
