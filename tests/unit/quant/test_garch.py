"""GARCH(1,1)-t: the pure recursion equals arch's one-step forecast on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch import arch_model
from tm_quant.garch import (
    DEFAULT_GARCH_PARAMS,
    MAX_PERSISTENCE,
    GarchFilter,
    GarchParams,
    NonStationaryGarch,
    arch_backcast,
    constrained_shape,
    feasible_start,
    fit_garch,
)


def _arch(returns):
    return arch_model(returns * 100, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)


@pytest.fixture(scope="module")
def fitted(returns):
    """Our parameters, and arch's model with exactly those parameters fixed (for a constrained
    fit they are not arch's estimate, so the recursion is compared with arch at our numbers)."""
    params = fit_garch(returns)
    res = _arch(returns).fix([params.mu, params.omega, params.alpha, params.beta, params.nu])
    return params, res


def test_fit_returns_percent_scaled_stationary_params(fitted, returns):
    params, _ = fitted
    mle = _arch(returns).fit(disp="off", show_warning=False).params
    assert params.mu == pytest.approx(mle["mu"]) and params.nu == pytest.approx(mle["nu"])
    assert params.nu > 2 and params.backcast > 0
    assert 0 < params.persistence <= MAX_PERSISTENCE
    if mle["alpha[1]"] + mle["beta[1]"] <= MAX_PERSISTENCE:
        assert not params.constrained
        assert (params.omega, params.alpha, params.beta) == pytest.approx(
            (mle["omega"], mle["alpha[1]"], mle["beta[1]"]))
    else:  # arch's estimate is integrated: variance-targeted onto the stationary region
        assert params.constrained
        assert params.alpha == pytest.approx(min(mle["alpha[1]"], MAX_PERSISTENCE))
        r = returns * 100
        assert params.unconditional_variance == pytest.approx(np.var(r - params.mu), rel=1e-9)


def _simulate_garch(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.standard_t(6, n) / math.sqrt(6 / 4)
    s2, out = omega / (1 - alpha - beta), np.empty(n)
    for t in range(n):
        out[t] = math.sqrt(s2) * z[t]
        s2 = omega + alpha * out[t] ** 2 + beta * s2
    return out / 100  # decimal returns


def test_stationary_fit_is_arch_estimate_unchanged():
    r = _simulate_garch(4000, omega=0.05, alpha=0.10, beta=0.80, seed=7)
    params = fit_garch(r)
    mle = _arch(r).fit(disp="off", show_warning=False).params
    assert not params.constrained and params.persistence < 0.95
    assert (params.omega, params.alpha, params.beta) == pytest.approx(
        (mle["omega"], mle["alpha[1]"], mle["beta[1]"]))


def test_integrated_fit_is_constrained_by_variance_targeting():
    """A fit at arch's boundary (alpha + beta = 1) is never returned as such: with the cap set
    below the estimate the result is variance-targeted at exactly the cap."""
    r = _simulate_garch(4000, omega=0.05, alpha=0.10, beta=0.80, seed=7)
    mle = _arch(r).fit(disp="off", show_warning=False).params
    cap = 0.5
    params = fit_garch(r, max_persistence=cap)
    assert params.constrained
    assert params.alpha == pytest.approx(mle["alpha[1]"]) and params.persistence == pytest.approx(cap)
    assert params.unconditional_variance == pytest.approx(np.var(r * 100 - params.mu), rel=1e-9)
    with pytest.raises(ValueError, match="max_persistence"):
        fit_garch(r, max_persistence=1.0)


def test_nonstationary_params_are_refused_by_the_live_filter():
    with pytest.raises(NonStationaryGarch, match="not stationary"):
        GarchParams(mu=0, omega=0.1, alpha=0.2, beta=0.8, backcast=1.0)
    with pytest.raises(NonStationaryGarch):
        GarchParams.from_dict({"mu": 0, "omega": 0.1, "alpha": 0.06, "beta": 0.9400001, "backcast": 2.0})
    assert not GarchParams.from_dict({"mu": 0, "omega": 0.1, "alpha": 0.06, "beta": 0.9}).constrained


def test_recursion_equals_arch_forecast_at_every_bar(fitted, returns):
    params, res = fitted
    sigma = GarchFilter(params).run(returns * 100)
    fc = res.forecast(horizon=1, start=0, reindex=False).variance.to_numpy()[:, 0]
    assert fc.shape == sigma.shape
    np.testing.assert_allclose(sigma**2, fc, rtol=1e-9)
    last = res.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0]
    assert sigma[-1] ** 2 == pytest.approx(last, rel=1e-9)


def test_recursion_equals_arch_in_sample_volatility_after_burn_in(fitted, returns):
    """arch's fit path starts from a backcast at the sample mean instead of mu; the gap decays."""
    params, res = fitted
    sigma = GarchFilter(params).run(returns * 100)
    np.testing.assert_allclose(sigma[1000:-1], res.conditional_volatility[1001:], rtol=1e-6)


def test_filter_resumes_from_checkpoint(returns):
    p = DEFAULT_GARCH_PARAMS
    full = GarchFilter(p).run(returns * 100)
    first = GarchFilter(p)
    first.run(returns[:500] * 100)
    resumed = GarchFilter(p, sigma2=first.variance).run(returns[500:] * 100)
    np.testing.assert_array_equal(resumed, full[500:])


def test_one_step_by_hand():
    p = GarchParams(mu=0.1, omega=0.2, alpha=0.1, beta=0.8, nu=5.0, backcast=1.0)
    f = GarchFilter(p)
    s2_0 = 0.2 + 0.9 * 1.0
    assert f.variance == pytest.approx(s2_0)
    assert f.update(2.1) == pytest.approx(math.sqrt(0.2 + 0.1 * 4.0 + 0.8 * s2_0))


def test_params_validation_and_round_trip():
    with pytest.raises(ValueError):
        GarchParams(mu=0, omega=0.0, alpha=0.1, beta=0.8)
    with pytest.raises(ValueError):
        GarchParams(mu=0, omega=0.1, alpha=0.3, beta=0.8)  # no long-run variance
    p = GarchParams(mu=0.01, omega=0.02, alpha=0.05, beta=0.9, nu=6.0, backcast=0.7, constrained=True)
    assert GarchParams.from_dict(p.to_dict()) == p
    assert DEFAULT_GARCH_PARAMS.unconditional_variance == pytest.approx(0.016 / 0.02)


def test_backcast_matches_arch_formula():
    e = np.linspace(-2, 2, 100)
    w = 0.94 ** np.arange(75)
    assert arch_backcast(e) == pytest.approx(float(np.sum(e[:75] ** 2 * w / w.sum())))


def test_fit_rejects_short_samples():
    with pytest.raises(ValueError):
        fit_garch(np.zeros(50))


@pytest.mark.parametrize("alpha", [0.0586423106608433, 0.05, 0.1, 0.3, 1e-9, 0.999, 1.5])
def test_a_constrained_shape_never_exceeds_the_cap(alpha):
    """``0.0586423106608433 + (0.999 - 0.0586423106608433)`` is 0.9990000000000001 in floats:
    a fit constrained there came out one ulp above the cap it was constrained to."""
    a, b = constrained_shape(alpha, MAX_PERSISTENCE)
    assert a + b <= MAX_PERSISTENCE
    assert a + b == pytest.approx(MAX_PERSISTENCE, abs=1e-15)
    assert a == min(alpha, MAX_PERSISTENCE) and b >= 0


STOPPED_FIT = """
import tm_common  # the numerics pins first, as every package of the project
import json
import numpy as np
from arch import arch_model
from tm_common.history import load_bars
from tm_quant.garch import fit_garch

r = np.diff(np.log(np.array([float(b.close) for b in load_bars("BTCUSDT")])))
out = {}
for cut in (4578, 4579, 4580):
    first = arch_model(r[:cut] * 100, mean="Constant", vol="GARCH", p=1, q=1, dist="t",
                       rescale=False).fit(disp="off", show_warning=False)
    try:
        p = fit_garch(r[:cut])
        got = [p.mu, p.alpha, p.nu, p.persistence]
    except ValueError as e:
        got = str(e)
    out[cut] = {"flag": first.convergence_flag, "fit": got}
print(json.dumps(out))
"""


def test_a_fit_stopped_outside_the_stationary_region_is_refitted_from_inside_it():
    """BTCUSDT's first 4,579 returns (a weekly retrain's window could end there): arch's SLSQP
    stops with flag 8 (its line search found no descent) at alpha + beta > 1, and training failed
    with "GARCH fit did not converge". Refitted from that point pulled inside the region, the fit
    lies between its neighbours' (4,578 and 4,580 returns), which converge at once. A fresh
    interpreter with the project's numerics pins, where the scan that found it ran."""
    import json
    import subprocess
    import sys

    out = json.loads(subprocess.run([sys.executable, "-c", STOPPED_FIT], capture_output=True,
                                    text=True, timeout=120, check=True).stdout)
    before, stopped, after = (out[str(c)] for c in (4578, 4579, 4580))
    if stopped["flag"] == 0:
        pytest.skip("arch's first fit converges on this machine: nothing to refit")
    assert isinstance(stopped["fit"], list), stopped["fit"]     # refitted, not "did not converge"
    assert stopped["fit"][3] <= MAX_PERSISTENCE
    for k in range(3):                                        # mu, alpha, nu
        lo, hi = sorted((before["fit"][k], after["fit"][k]))
        assert lo * 0.99 <= stopped["fit"][k] <= hi * 1.01, (k, before, stopped, after)


def test_a_feasible_start_is_inside_the_region():
    start = feasible_start(np.array([0.01, -1e-9, 0.06, 0.95, 1.9]))
    assert start[1] > 0 and start[2] + start[3] == pytest.approx(0.99) and start[4] > 2
    inside = np.array([0.01, 0.1, 0.05, 0.9, 5.0])
    assert (feasible_start(inside) == inside).all()
