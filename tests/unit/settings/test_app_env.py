"""Every environment the apps hand to service processes names only variables that a setting
reads (a renamed variable left behind would be ignored without a word), and the mesh's
environment rebuilds the settings it was rendered from."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from tm_app import chaos, faults_run
from tm_app.backtest import RunConfig
from tm_app.fuzz import mesh as fuzz_mesh
from tm_app.mesh import SETTINGS, _specs
from tm_common.settings import unknown_env

from .conftest import SERVICE_SETTINGS

ALL = list(SERVICE_SETTINGS.values())
CFG = RunConfig(database_url="sqlite+aiosqlite:////tmp/x.db", start_ms=1_700_000_000_000,
                end_ms=1_700_100_000_000, history_dir="/data/history",
                extra_env={**faults_run.TRADING_ENV})


def _mesh_specs():
    return _specs(CFG, redis_url="redis://127.0.0.1:6379/0", namespace="tmrun:t:",
                  data_dir=Path("/tmp/run"), port_offset=0)


def test_mesh_and_drill_environments_are_all_read():
    envs = [s.env for s in _mesh_specs()]
    envs += [s.env for s in fuzz_mesh.specs(redis_url="redis://x", database_url="sqlite://",
                                           namespace="n:", data_dir=Path("/d"), port_offset=0,
                                           admin_token="t" * 24)]
    envs += [chaos.TRADING_ENV, chaos.REPLAY_ENV, faults_run.TRADING_ENV]
    for env in envs:
        assert unknown_env(ALL, env) == []


@pytest.mark.parametrize("spec", _mesh_specs(), ids=lambda s: s.name)
def test_mesh_environment_rebuilds_each_service(spec, clean_env):
    for k, v in spec.env.items():
        clean_env.setenv(k, v)
    s = SETTINGS[spec.name]()
    assert s.service_name == spec.name and s.http_port == spec.port
    assert s.mode == "replay" and s.symbols == CFG.symbols and s.namespace == "tmrun:t:"
    assert unknown_env([SETTINGS[spec.name]], spec.env) == []
    if spec.name == "risk":
        assert s.stale_check_interval_s == 0
    if spec.name == "sizer":
        assert s.join_timeout_s == 0 and s.kelly_confidence == 0.02   # from extra_env
    if spec.name == "portfolio":
        assert s.initial_equity == Decimal(100000)
    if spec.name == "exchange_sim":
        assert s.sim_initial_balance == Decimal(100000) and s.sim_symbols == list(CFG.symbols)
    if spec.name == "executor":
        assert s.bybit_rest_url == "http://127.0.0.1:8108" and not s.order_history_fallback
    if spec.name == "ingest":
        assert (s.replay_start_ms, s.replay_end_ms) == (CFG.start_ms, CFG.end_ms)
        assert s.replay_venue_url == "http://127.0.0.1:8108" and s.replay_lockstep
