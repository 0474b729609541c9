"""Every service's settings class, for the naming-rule and unknown-variable tests."""

from __future__ import annotations

import pytest
from tm_exchange_sim.config import ExchangeSimSettings
from tm_executor.config import ExecutorSettings
from tm_ingest.config import IngestSettings
from tm_portfolio.config import PortfolioSettings
from tm_regime.config import RegimeSettings
from tm_risk.config import RiskSettings
from tm_signal.config import SignalSettings
from tm_sizer.config import SizerSettings

SERVICE_SETTINGS = {
    "exchange_sim": ExchangeSimSettings, "executor": ExecutorSettings, "ingest": IngestSettings,
    "portfolio": PortfolioSettings, "regime": RegimeSettings, "risk": RiskSettings,
    "signal": SignalSettings, "sizer": SizerSettings,
}


@pytest.fixture
def clean_env(monkeypatch):
    """No TM_ variable from the outer environment leaks into a test."""
    import os

    for k in [k for k in os.environ if k.upper().startswith("TM_")]:
        monkeypatch.delenv(k)
    return monkeypatch
