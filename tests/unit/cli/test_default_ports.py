"""A service started with no ``TM_HTTP_PORT`` listens where ``tm up``, docker-compose, Helm and
the README say it does (the service table, 8101-8108)."""

import importlib

import pytest
from tm_app.stack.services import SERVICES

SETTINGS = {"ingest": "IngestSettings", "regime": "RegimeSettings", "signal": "SignalSettings",
            "sizer": "SizerSettings", "risk": "RiskSettings", "executor": "ExecutorSettings",
            "portfolio": "PortfolioSettings", "exchange_sim": "ExchangeSimSettings"}


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_settings_default_port_is_the_service_table_port(svc, monkeypatch):
    monkeypatch.delenv("TM_HTTP_PORT", raising=False)
    cls = getattr(importlib.import_module(f"{svc.module}.config"), SETTINGS[svc.name])
    assert cls.model_fields["http_port"].default == svc.port
