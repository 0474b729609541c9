"""Regime unit-test fixtures: HMMs fitted once per session on shipped bars."""

from __future__ import annotations

import pytest
from tm_regime.domain.model import RegimeBundleModel
from tm_regime.models import parse
from tm_regime.testing import fit_instrument, regime_bundle

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.fixture(scope="session")
def fitted_btc():
    return fit_instrument("BTCUSDT", start=0, n_bars=1500, seed=7)


@pytest.fixture(scope="session")
def fitted_eth():
    return fit_instrument("ETHUSDT", start=1500, n_bars=1500, seed=3)


@pytest.fixture(scope="session")
def model_r1(fitted_btc) -> RegimeBundleModel:
    """Every instrument uses the BTC fit (enough to exercise the service)."""
    return parse(regime_bundle("r1", {s: fitted_btc for s in SYMS}))


@pytest.fixture(scope="session")
def model_r2(fitted_eth) -> RegimeBundleModel:
    return parse(regime_bundle("r2", {s: fitted_eth for s in SYMS},
                               kelly={"Bull": 0.6, "Neutral": 0.4, "Bear": 0.2, "Crisis": 0.1}))
