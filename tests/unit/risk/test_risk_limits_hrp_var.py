"""Limits, hierarchical risk parity and VaR (pure functions)."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform
from tm_exchange_sim.matching.instruments import DEFAULT_INSTRUMENTS
from tm_risk.domain.hrp import (
    hrp_weights,
    log_returns,
    quasi_diag_order,
    risk_budgets,
    single_linkage_order,
)
from tm_risk.domain.limits import apply_limits
from tm_risk.domain.params import RiskParams
from tm_risk.domain.var import (
    fit_scale,
    historical_var,
    horizon_returns,
    parametric_var,
    portfolio_var,
    quantile_linear,
)

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
PARAMS = RiskParams(symbols=SYMS, instruments=DEFAULT_INSTRUMENTS,
                    instrument_max_fraction={"SOLUSDT": 0.5}, max_notional_usdt=Decimal(150_000))
frac = st.floats(-3, 3, allow_nan=False)


# -- limits ---------------------------------------------------------------------------------
@given(st.sampled_from(SYMS), frac, st.dictionaries(st.sampled_from(SYMS), frac),
       st.floats(1_000, 1e6), st.one_of(st.none(), st.floats(0, 1)))
@settings(deadline=None)
def test_limits_only_shrink_and_respect_every_cap(inst, t, others, equity, budget):
    r = apply_limits(inst, t, others, equity, budget, PARAMS)
    assert abs(r.fraction) <= abs(t) + 1e-15
    assert r.fraction == 0 or math.copysign(1, r.fraction) == math.copysign(1, t)
    assert abs(r.fraction) <= PARAMS.fraction_cap(inst) + 1e-12
    assert abs(r.fraction) * equity <= 150_000 * (1 + 1e-12)
    if budget is not None:
        assert abs(r.fraction) <= budget * PARAMS.gross_cap + 1e-12
    rest = {k: v for k, v in others.items() if k != inst}
    gross_rest, net_rest = sum(abs(v) for v in rest.values()), sum(rest.values())
    if gross_rest <= PARAMS.gross_cap and abs(net_rest) <= PARAMS.net_cap:
        assert gross_rest + abs(r.fraction) <= PARAMS.gross_cap + 1e-9
        assert abs(net_rest + r.fraction) <= PARAMS.net_cap + 1e-9
    assert bool(r.reasons) == (abs(r.fraction) < abs(t))


def test_limit_reasons_name_the_binding_cap():
    r = apply_limits("BTCUSDT", 1.2, {"ETHUSDT": 1.0, "SOLUSDT": 0.0}, 100_000, None, PARAMS)
    assert math.isclose(r.fraction, 0.5) and r.reasons[-1].startswith("net leverage cap 1.5")
    r = apply_limits("BTCUSDT", -0.9, {"ETHUSDT": 1.0, "SOLUSDT": 0.5}, 100_000, 0.2, PARAMS)
    assert math.isclose(r.fraction, -0.4) and len(r.reasons) == 1 and "risk budget" in r.reasons[0]
    r = apply_limits("BTCUSDT", -0.9, {"ETHUSDT": 1.0, "SOLUSDT": -0.5}, 100_000, None, PARAMS)
    assert math.isclose(r.fraction, -0.5) and r.reasons == ("gross leverage cap 2: 0.9000 -> 0.5000",)


# -- HRP ------------------------------------------------------------------------------------
returns = st.integers(2, 6).flatmap(lambda n: hnp.arrays(
    float, st.tuples(st.integers(2, 120), st.just(n)),
    elements=st.floats(-0.2, 0.2, allow_nan=False, allow_subnormal=False)))


@given(returns)
@settings(max_examples=150, deadline=None)
def test_hrp_weights_are_non_negative_and_sum_to_one(r):
    w = hrp_weights(r)
    assert w.shape == (r.shape[1],) and np.isfinite(w).all()
    assert (w >= 0).all() and abs(w.sum() - 1) < 1e-9
    assert sorted(quasi_diag_order(r)) == list(range(r.shape[1]))


@given(st.integers(2, 9).flatmap(lambda n: hnp.arrays(
    float, (n, n), elements=st.floats(0.01, 10, allow_nan=False))))
@settings(deadline=None)
def test_single_linkage_order_matches_scipy(m):
    d = np.triu(m, 1) + np.triu(m, 1).T
    tri = d[np.triu_indices(len(d), 1)]
    assume(len(set(tri.tolist())) == len(tri))          # ties may be broken either way
    expected = [int(i) for i in leaves_list(linkage(squareform(d), method="single"))]
    assert single_linkage_order(d) == expected


def test_hrp_known_cases():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5000, 2))
    # two uncorrelated instruments: inverse-variance weights
    w = hrp_weights(z * [0.01, 0.02])
    assert np.allclose(w, [0.8, 0.2], atol=0.02)
    # an instrument duplicated does not double its cluster's budget (the point of HRP)
    a, b = z[:, 0] * 0.01, z[:, 1] * 0.01
    w = hrp_weights(np.column_stack([a, a, b]))
    assert np.allclose(w, [0.25, 0.25, 0.5], atol=0.02)
    # too little history: equal budgets
    assert risk_budgets(SYMS, z[:10, :1].repeat(3, axis=1), 30) == {s: 1 / 3 for s in SYMS}
    assert risk_budgets(SYMS, None, 30) == {s: 1 / 3 for s in SYMS}
    b = risk_budgets(SYMS, np.column_stack([a, a * 2, b]), 30)
    assert abs(sum(b.values()) - 1) < 1e-12 and b["BTCUSDT"] > b["ETHUSDT"]


def test_log_returns():
    c = np.array([[100.0, 10.0], [110.0, 10.0], [99.0, 5.0]])
    assert np.allclose(log_returns(c), [[math.log(1.1), 0], [math.log(0.9), math.log(0.5)]])


# -- VaR ------------------------------------------------------------------------------------
def test_parametric_var_formula():
    cov = np.array([[0.0001, 0.0], [0.0, 0.0004]])
    v = parametric_var(np.array([1.0, -0.5]), cov, 6, 0.99)
    assert math.isclose(v, 2.3263478740 * math.sqrt(6 * (0.0001 + 0.25 * 0.0004)), rel_tol=1e-9)


def test_historical_var_is_the_loss_quantile_of_overlapping_windows():
    r = np.log1p(np.array([[0.01], [-0.02], [0.03], [-0.05], [0.0], [0.02], [-0.01]]))
    hr = horizon_returns(r, 2)
    expected = [(1.01 * 0.98) - 1, 0.98 * 1.03 - 1, 1.03 * 0.95 - 1, 0.95 - 1, 1.02 - 1, 1.02 * 0.99 - 1]
    assert np.allclose(hr[:, 0], expected)
    v = historical_var(np.array([2.0]), r, 2, 0.8)
    assert math.isclose(v, -float(np.quantile(2 * np.array(expected), 0.2)))


@given(hnp.arrays(float, st.integers(1, 400), elements=st.floats(-1, 1)), st.floats(0, 1))
@settings(deadline=None)
def test_quantile_matches_numpy(x, q):
    assert math.isclose(quantile_linear(x, q), float(np.quantile(x, q)), abs_tol=1e-12)


var_case = st.tuples(
    st.integers(0, 10_000), st.integers(1, 4), st.integers(10, 200),
    st.floats(0.002, 0.08), st.floats(0.005, 0.2), st.integers(1, 8))


@given(var_case, st.lists(st.floats(-3, 3, allow_nan=False), min_size=4, max_size=4))
@settings(max_examples=150, deadline=None)
def test_var_scaling_brings_var_under_the_limit(case, wl):
    seed, n, t, vol, limit, h = case
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, size=(t, n)) * vol
    w = np.array(wl[:n])
    v = portfolio_var(w, r, h, 0.99)
    k = fit_scale(v.value, limit)
    assert 0 < k <= 1
    scaled = portfolio_var(w * k, r, h, 0.99)
    assert scaled.value <= limit
    if v.value > limit:
        assert math.isclose(scaled.value, limit, rel_tol=1e-6)
    else:
        assert k == 1
    # positive homogeneity, the property the scaling relies on
    assert math.isclose(portfolio_var(w * 2.5, r, h, 0.99).value, 2.5 * v.value, rel_tol=1e-9,
                        abs_tol=1e-15)
