"""Performance statistics on hand-computed series; the incremental tracker equals the batch
formulas; state round-trips through JSON unchanged."""

import itertools
import json
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_portfolio.domain.performance import (
    PerformanceTracker,
    calmar,
    max_drawdown,
    sharpe,
    sortino,
)

R = [0.01, -0.02, 0.03, 0.0]


def test_sharpe_by_hand():
    # mean 0.005; deviations .005 -.025 .025 -.005 → Σd² = 0.0013; sample var = 0.0013 / 3
    per_bar = 0.005 / math.sqrt(0.0013 / 3)
    assert per_bar == pytest.approx(0.2401922307)
    assert sharpe(R, 2190) == pytest.approx(0.2401922307 * math.sqrt(2190))
    assert sharpe(R, 2190) == pytest.approx(11.2404, abs=1e-4)
    assert sharpe([0.01], 2190) is None and sharpe([0.01, 0.01], 2190) is None


def test_sortino_by_hand():
    # downside: only −0.02 → sqrt(0.0004 / 4) = 0.01; 0.005 / 0.01 = 0.5 per bar
    assert sortino(R, 1) == pytest.approx(0.5)
    assert sortino(R, 2190) == pytest.approx(0.5 * math.sqrt(2190))
    assert sortino([0.01, 0.02], 2190) is None


def test_max_drawdown_and_calmar_by_hand():
    assert max_drawdown([100, 110, 99, 120, 90]) == pytest.approx(0.25)     # 120 → 90
    assert max_drawdown([100, 101, 102]) == 0.0
    # 3 periods, 3 per year: CAGR = 144/100 − 1 = 0.44; max DD = 30/120 = 0.25 → 1.76
    assert calmar([100, 120, 90, 144], 3) == pytest.approx(1.76)
    assert calmar([100, 110], 3) is None


def test_tracker_on_the_hand_series():
    t = PerformanceTracker(initial=Decimal(100), periods_per_year=3)
    out = [t.add(Decimal(e)) for e in (120, 90, 144)]
    assert out == [(Decimal(120), 0.0), (Decimal(120), 0.25), (Decimal(144), 0.0)]
    assert t.max_drawdown == pytest.approx(0.25)
    assert t.cagr() == pytest.approx(0.44)
    assert t.calmar() == pytest.approx(1.76)
    rets = [0.2, -0.25, 0.6]
    assert t.sharpe() == pytest.approx(sharpe(rets, 3))
    assert t.sortino() == pytest.approx(sortino(rets, 3))
    assert t.bar_win_rate() == pytest.approx(2 / 3)
    assert t.average_equity() == Decimal(118)                # (120 + 90 + 144) / 3
    assert t.turnover(Decimal(236)) == pytest.approx(2.0)
    assert PerformanceTracker.from_dict(json.loads(json.dumps(t.to_dict()))) == t


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(50_000, 200_000), min_size=1, max_size=80))
def test_tracker_equals_batch_formulas(equities):
    t = PerformanceTracker(initial=Decimal(100_000))
    for e in equities:
        t.add(Decimal(e))
    curve = [100_000.0] + [float(e) for e in equities]
    rets = [b / a - 1 for a, b in itertools.pairwise(curve)]
    for got, want in ((t.sharpe(), sharpe(rets, 2190)), (t.sortino(), sortino(rets, 2190)),
                      (t.calmar(), calmar(curve, 2190))):
        assert (got is None) == (want is None)
        if got is not None:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-9)
    assert t.max_drawdown == pytest.approx(max_drawdown(curve))
    back = PerformanceTracker.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back == t and back.sharpe() == t.sharpe()
