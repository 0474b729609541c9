"""Secrets scoped (issue 19, part 5): each service of the local stack gets the variables its
settings read and a few basics, nothing else; the Bybit keys reach the executor only."""

from __future__ import annotations

import pytest
from tm_app.stack.env_scope import BASIC_ENV, service_env, settings_class, unread_env
from tm_app.stack.services import SERVICES, build_specs, select
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings, known_env

BYBIT = {"TM_EXECUTOR_BYBIT_API_KEY": "SECbybit-key-1", "TM_EXECUTOR_BYBIT_API_SECRET": "SECbybit-2"}
ENV = {
    **BYBIT,
    "TM_SIM_API_SECRET": "SECsim-3", "TM_RISK_DRAWDOWN_LIMIT": "0.04",
    "TM_SIZER_MAX_FRACTION": "0.2", "TM_INGEST_FUNDING_ENABLED": "false",
    "TM_REDIS_URL": "redis://svc:SECrd@127.0.0.1:6379/0", "TM_DATABASE_URL": "sqlite+aiosqlite:///x",
    "TM_DATA_DIR": "/tmp/tm", "TM_SYMBOLS": "BTCUSDT",
    "TM_TEST_DATABASE_URL": "postgresql://t", "TM_BENCH_X": "1", "TM_SERVICES_FILE": "/f.json",
    "PATH": "/usr/bin", "HOME": "/home/u", "PYTHONPATH": "/src", "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8", "HTTPS_PROXY": "http://proxy:3128",
    "AWS_SECRET_ACCESS_KEY": "SECaws-4", "GITHUB_TOKEN": "SECgh-5", "PGPASSWORD": "SECpg-6",
}


@pytest.fixture(scope="module")
def specs():
    return {s.name: s for s in build_specs(SERVICES, ENV, python="py")}


def test_every_service_has_its_settings_class():
    assert set(SERVICE_ENV_PREFIXES) == {s.name for s in SERVICES}
    for s in SERVICES:
        cls = settings_class(s.name)
        assert cls is not CommonSettings and issubclass(cls, CommonSettings), s.name
        assert cls.model_config["env_prefix"] == SERVICE_ENV_PREFIXES[s.name]
    assert settings_class("not-a-service") is CommonSettings


def test_each_spec_holds_only_the_tm_variables_its_settings_read(specs):
    for name, spec in specs.items():
        own = known_env([settings_class(name)])
        tm = {k for k in spec.env if k.startswith("TM_")}
        assert tm <= own, f"{name} gets variables it does not read: {sorted(tm - own)}"
        other = {k for k in spec.env if not k.startswith("TM_")}
        assert other <= BASIC_ENV | {"LC_ALL"}, (name, other)
        # what it does read, it gets
        assert {k for k in ENV if k in own} <= tm, name
        assert spec.env["TM_SERVICE_NAME"] == name and spec.env["TM_REDIS_URL"] == ENV["TM_REDIS_URL"]


def test_the_bybit_keys_reach_the_executor_only(specs):
    holders = {name for name, spec in specs.items() if set(BYBIT) & set(spec.env)}
    assert holders == {"executor"}
    assert {k: specs["executor"].env[k] for k in BYBIT} == BYBIT
    assert {n for n, s in specs.items() if "TM_SIM_API_SECRET" in s.env} == {"exchange_sim"}
    assert {n for n, s in specs.items() if "TM_RISK_DRAWDOWN_LIMIT" in s.env} == {"risk"}


def test_foreign_credentials_and_test_variables_reach_no_service(specs):
    for name, spec in specs.items():
        for k in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "PGPASSWORD", "TM_TEST_DATABASE_URL",
                  "TM_BENCH_X", "TM_SERVICES_FILE"):
            assert k not in spec.env, (name, k)
        for k in ("PATH", "HOME", "PYTHONPATH", "LANG", "LC_ALL", "HTTPS_PROXY"):
            assert spec.env[k] == ENV[k], (name, k)
        assert not [v for v in spec.env.values() if v.startswith(("SECaws", "SECgh", "SECpg"))]


def test_a_custom_service_gets_the_shared_variables_only():
    (spec,) = build_specs(select("alpha", [type(SERVICES[0])("alpha", "tm_fake_svc", 9)]), ENV)
    assert {k for k in spec.env if k.startswith("TM_")} == {
        "TM_REDIS_URL", "TM_DATABASE_URL", "TM_DATA_DIR", "TM_SYMBOLS", "TM_SERVICE_NAME",
        "TM_HTTP_PORT"}


def test_service_env_matches_names_as_pydantic_settings_does():
    assert service_env("risk", {"tm_risk_drawdown_limit": "0.1", "tm_sizer_max_fraction": "1"}) \
        == {"tm_risk_drawdown_limit": "0.1"}


def test_unread_variables_are_named():
    env = {**ENV, "TM_REDIS_URLL": "x", "TM_RISK_DRAWDOWN_LIMT": "0.1"}
    names = [s.name for s in SERVICES]
    assert unread_env(names, env) == ["TM_REDIS_URLL", "TM_RISK_DRAWDOWN_LIMT"]
    # another service's variable is not a typo when that service is not started
    assert unread_env(["signal"], env) == ["TM_REDIS_URLL"]


def test_demo_and_paper_supervisors_pass_only_what_each_service_reads(tmp_path, monkeypatch):
    """``tm demo``'s mesh and ``tm paper``: a run's TM_ overrides reach only the services that
    read them, and the caller's shell gives every child its basics only (no planted secret)."""
    from decimal import Decimal

    from tm_app.backtest import RunConfig
    from tm_app.mesh import _specs
    from tm_app.paper_mesh import PaperConfig, PaperRun
    from tm_app.stack.env_scope import basic_env

    monkeypatch.setenv("TM_EXECUTOR_BYBIT_API_SECRET", "planted-secret")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    base = basic_env()
    assert "TM_EXECUTOR_BYBIT_API_SECRET" not in base and base["LC_ALL"] == "C.UTF-8"
    cfg = RunConfig(start_ms=0, end_ms=1, database_url="sqlite+aiosqlite:///x",
                    initial_equity=Decimal(1000),
                    extra_env={"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_RISK_DAILY_LOSS_LIMIT": "0.05"})
    env = {s.name: s.env for s in _specs(cfg, redis_url="redis://x", namespace="ns:",
                                        data_dir=tmp_path, port_offset=0)}
    assert env["sizer"]["TM_SIZER_KELLY_CONFIDENCE"] == "0.02"
    assert [n for n, e in env.items() if "TM_SIZER_KELLY_CONFIDENCE" in e] == ["sizer"]
    assert [n for n, e in env.items() if "TM_RISK_DAILY_LOSS_LIMIT" in e] == ["risk"]
    run = PaperRun(PaperConfig(redis_url="redis://x", database_url="sqlite+aiosqlite:///x",
                               paper_dir=tmp_path, namespace="p:", market_rest_url="http://m",
                               market_ws_url="ws://m", deribit_url="http://d",
                               symbols=("BTCUSDT",)), state_path=None)
    for sup in (run.sup, run.ingest):
        assert not [k for k in sup.base_env if k.startswith("TM_")]


def test_tm_paper_gives_each_admin_token_only_to_the_service_that_checks_it(tmp_path):
    """Risk gets risk's token, the paper venue (and its bar relay) the simulator's; ingest, which
    drives no simulator clock in paper mode, gets none; no service holds another's."""
    from tm_app.paper_mesh import PaperConfig, PaperRun, specs

    risk_t, sim_t = "r" * 40, "s" * 40
    cfg = PaperConfig(redis_url="redis://x", database_url="sqlite+aiosqlite:///x",
                      paper_dir=tmp_path, namespace="p:", market_rest_url="http://m",
                      market_ws_url="ws://m", deribit_url="http://d", symbols=("BTCUSDT",),
                      admin_token=risk_t, sim_admin_token=sim_t)
    env = {s.name: s.env for s in specs(cfg)}
    holders = {n: {t for t in (risk_t, sim_t) if t in e.values()} for n, e in env.items()}
    assert holders["risk"] == {risk_t} and holders["exchange_sim"] == {sim_t}
    assert all(not held for n, held in holders.items() if n not in ("risk", "exchange_sim"))
    assert PaperRun(cfg, state_path=None).relay.headers == {"Authorization": f"Bearer {sim_t}"}
    shared = PaperConfig(**{**cfg.__dict__, "sim_admin_token": None})   # one TM_ADMIN_TOKEN
    assert shared.venue_token == risk_t
