"""The service contract: every service's ``app.py`` has one composition root,
``build(settings, *, bus, registry=None, venue=None, clock=WALL_CLOCK) -> ServiceParts``, and
``python -m tm_<svc>``, the in-process backtest and the tests all go through it."""

from __future__ import annotations

import ast
import importlib
import inspect
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from tm_common.bus import InMemoryBus
from tm_common.service import WALL_CLOCK, ServiceParts, create_app, parts_app
from tm_common.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("ingest", "regime", "signal", "sizer", "risk", "executor", "portfolio")
SETTINGS = {"ingest": "IngestSettings", "regime": "RegimeSettings", "signal": "SignalSettings",
            "sizer": "SizerSettings", "risk": "RiskSettings", "executor": "ExecutorSettings",
            "portfolio": "PortfolioSettings"}
# What each service needs to build without a database or a network (nothing is started).
OFFLINE = {"ingest": {"db_enabled": False, "mode": "off"}, "regime": {"db_enabled": False},
           "signal": {"db_enabled": False}, "sizer": {"db_enabled": False},
           "risk": {"stale_check_interval_s": 0}, "executor": {},
           "portfolio": {"db_enabled": False}}


def _settings(svc: str, **kw):
    cls = getattr(importlib.import_module(f"tm_{svc}.config"), SETTINGS[svc])
    return cls(redis_url="redis://127.0.0.1:1/0", **{**OFFLINE[svc], **kw})


@pytest.mark.parametrize("svc", SERVICES)
def test_every_service_app_has_build_with_the_one_signature(svc):
    build = importlib.import_module(f"tm_{svc}.app").build
    params = list(inspect.signature(build).parameters.values())
    assert [p.name for p in params] == ["settings", "bus", "registry", "venue", "clock"]
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert params[1].default is inspect.Parameter.empty           # the bus is always given
    assert params[2].default is None and params[3].default is None
    assert params[4].default is WALL_CLOCK


@pytest.mark.parametrize("svc", SERVICES)
def test_build_returns_parts_on_the_given_bus(svc):
    bus = InMemoryBus()
    parts = importlib.import_module(f"tm_{svc}.app").build(_settings(svc), bus=bus)
    assert isinstance(parts, ServiceParts) and parts.bus is bus
    assert all(c.bus is bus for c in parts.consumers)
    assert (len(parts.consumers) == 1) is (svc != "ingest")     # ingest is a source
    assert parts.handlers                                        # what a driver steps or reads
    runtime = parts.runtime()
    assert runtime.bus is bus and runtime.consumers == list(parts.consumers)
    assert set(runtime.background) == set(parts.background)
    paths = {getattr(r, "path", None) for r in parts_app(parts).routes}
    assert {"/healthz", "/readyz", "/metrics", "/status"} <= paths


def test_build_stamps_its_clock_on_what_the_consumer_emits():
    from tm_risk.app import build

    parts = build(_settings("risk"), bus=InMemoryBus(), clock=lambda: 42)
    assert parts.consumers[0].clock() == 42


def test_risk_admin_routes_come_with_its_parts():
    from tm_risk.app import build

    parts = build(_settings("risk", admin_token="t0ken-for-the-test-5e6f7a8b"), bus=InMemoryBus())
    assert {r.path for router in parts.routers for r in router.routes} >= {"/breaker/trip"}
    client = TestClient(parts_app(parts))          # not started: only the routing is asked
    assert client.post("/breaker/trip", json={}).status_code in (401, 403)   # served, refused
    assert client.post("/no/such/route").status_code == 404


def test_executor_build_uses_the_given_in_process_venue():
    from tm_executor.app import build

    session = object()
    parts = build(_settings("executor"), bus=InMemoryBus(), venue=session)
    venue = parts.handlers["preflight"].venue
    assert venue._session() is session and venue.blocking is False


def test_create_app_serves_the_given_routers():
    from tm_common.service import ServiceRuntime

    router = APIRouter()

    @router.get("/extra")
    def extra() -> dict:
        return {"ok": True}

    s = CommonSettings(service_name="svc", redis_url="redis://127.0.0.1:1/0")
    app = create_app(ServiceRuntime(s, InMemoryBus()), routers=[router])
    with TestClient(app) as client:
        assert client.get("/extra").json() == {"ok": True}
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("svc", SERVICES)
def test_python_m_goes_through_build(svc):
    path = ROOT / "services" / svc / f"tm_{svc}" / "__main__.py"
    source = path.read_text()
    code = [line for line in source.splitlines() if line.strip()]
    assert len(code) <= 6, "a __main__ is a few lines: serve(build, Settings())"
    tree = ast.parse(source)
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               for a in n.names}
    assert (f"tm_{svc}.app", "build") in imports and ("tm_common.service", "serve") in imports
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) == "serve"]
    assert calls and getattr(calls[0].args[0], "id", None) == "build"


def test_backtest_builds_every_service_with_its_build(monkeypatch, tmp_path):
    from tm_app import backtest

    calls = {}
    for svc in SERVICES:
        mod = importlib.import_module(f"tm_{svc}.app")

        def spy(settings, *, _svc=svc, _real=mod.build, **kw):
            calls[_svc] = kw
            return _real(settings, **kw)
        monkeypatch.setattr(mod, "build", spy)
    bus, venue = InMemoryBus(), SimpleNamespace(endpoint="inprocess://venue")
    cfg = backtest.RunConfig(start_ms=0, end_ms=1, database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db",
                             initial_equity=Decimal(5000), extra_env={"TM_MAX_DELIVERIES": "7"})
    parts = backtest.build_services(bus, cfg, venue)
    assert set(parts) == set(calls) == set(SERVICES)
    assert all(kw["bus"] is bus for kw in calls.values())
    assert calls["executor"]["venue"] is venue
    assert calls["signal"]["registry"] is not None
    assert parts["portfolio"].settings.initial_equity == Decimal(5000)
    assert parts["risk"].consumers[0].max_deliveries == 7            # extra_env, as the mesh
    tree = ast.parse(inspect.getsource(backtest))
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "__new__" not in names and "os" not in imported     # no hand-made service objects


def test_backtest_leaves_the_environment_alone(monkeypatch, tmp_path):
    import os

    from tm_app import backtest

    monkeypatch.delenv("TM_MAX_DELIVERIES", raising=False)
    before = dict(os.environ)
    cfg = backtest.RunConfig(start_ms=0, end_ms=1, database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db",
                             extra_env={"TM_MAX_DELIVERIES": "7"})
    backtest.build_services(InMemoryBus(), cfg, SimpleNamespace(endpoint="inprocess://venue"))
    assert dict(os.environ) == before
