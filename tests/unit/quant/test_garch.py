"""GARCH(1,1)-t: the pure recursion equals arch's one-step forecast on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch import arch_model
from tm_quant.garch import DEFAULT_GARCH_PARAMS, GarchFilter, GarchParams, arch_backcast, fit_garch


@pytest.fixture(scope="module")
def returns(market) -> np.ndarray:
    c = market.bars("BTCUSDT")["close"].to_numpy()[:3000]
    return np.diff(np.log(c))


@pytest.fixture(scope="module")
def fitted(returns):
    params = fit_garch(returns)
    am = arch_model(returns * 100, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    res = am.fit(disp="off", show_warning=False)
    return params, res


def test_fit_returns_percent_scaled_params(fitted):
    params, res = fitted
    assert params.mu == pytest.approx(res.params["mu"])
    assert params.omega == pytest.approx(res.params["omega"])
    assert params.alpha == pytest.approx(res.params["alpha[1]"])
    assert params.beta == pytest.approx(res.params["beta[1]"])
    assert params.nu == pytest.approx(res.params["nu"])
    assert 0 < params.persistence <= 1 and params.nu > 2
    assert params.backcast > 0


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
        GarchParams(mu=0, omega=0.1, alpha=0.3, beta=0.8)  # no long-run variance, no backcast
    p = GarchParams(mu=0.01, omega=0.02, alpha=0.05, beta=0.9, nu=6.0, backcast=0.7)
    assert GarchParams.from_dict(p.to_dict()) == p
    assert DEFAULT_GARCH_PARAMS.unconditional_variance == pytest.approx(0.016 / 0.02)


def test_backcast_matches_arch_formula():
    e = np.linspace(-2, 2, 100)
    w = 0.94 ** np.arange(75)
    assert arch_backcast(e) == pytest.approx(float(np.sum(e[:75] ** 2 * w / w.sum())))


def test_fit_rejects_short_samples():
    with pytest.raises(ValueError):
        fit_garch(np.zeros(50))
