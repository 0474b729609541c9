"""Deliberate arming, with the executor as a real process (``python -m tm_executor``) against the
exchange simulator over HTTP: an unarmed real venue exits at start with one line naming
TM_LIVE_TRADING, before any network call; the active venue and mode are in /status, /metrics and
the start-up log; a start on a real venue writes an ``arming`` audit row (PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from tm_common.audit import list_audit
from tm_common.db import make_engine
from tm_common.db.migrate import migrate
from tm_common.endpoints import BYBIT_MAINNET_REST, BYBIT_TESTNET_PRIVATE_WS, BYBIT_TESTNET_REST
from tm_common.testing.processes import clean_env
from tm_executor.app import ExecutorService

from .conftest import executor_settings


def _run_executor(**env: str | None) -> subprocess.CompletedProcess[str]:
    # An unreachable Redis and database: if the process got as far as any connection, the
    # error would be about them, and it would not exit within seconds.
    e = {**clean_env(), "TM_REDIS_URL": "redis://127.0.0.1:1/0",
         "TM_DATABASE_URL": "postgresql+asyncpg://tm@127.0.0.1:1/tm", "TM_HTTP_PORT": "1", **env}
    e = {k: v for k, v in e.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "tm_executor"], env=e, capture_output=True,
                          text=True, timeout=60, check=False)


INTENT_KEYS = {"signing_key_risk_order": "o" * 40, "signing_key_risk_breaker": "b" * 40}


@pytest.mark.parametrize("env, fragment", [
    ({"TM_EXECUTOR_BYBIT_REST_URL": BYBIT_MAINNET_REST}, "TM_LIVE_TRADING=armed"),
    ({"TM_EXECUTOR_BYBIT_REST_URL": BYBIT_MAINNET_REST, "TM_LIVE_TRADING": "testnet"},
     "TM_LIVE_TRADING=armed"),
    ({"TM_EXECUTOR_BYBIT_REST_URL": "https://api.bytick.com", "TM_LIVE_TRADING": "yes"},
     "is not a mode"),
    ({"TM_EXECUTOR_BYBIT_REST_URL": BYBIT_TESTNET_REST,
      "TM_EXECUTOR_BYBIT_PRIVATE_WS_URL": BYBIT_TESTNET_PRIVATE_WS}, "TM_LIVE_TRADING=testnet"),
])
def test_an_unarmed_real_venue_exits_at_start_with_one_line(env, fragment):
    t0 = time.monotonic()
    p = _run_executor(**env)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert fragment in lines[0] and "TM_LIVE_TRADING" in lines[0]
    assert "Traceback" not in p.stderr and "redis" not in p.stderr.lower()
    assert time.monotonic() - t0 < 30


def test_the_default_venue_is_the_simulator_and_status_metrics_log_say_so(
        sim, redis_url, namespace, executor_factory):
    svc = executor_factory(sim, redis_url, namespace, TM_LIVE_TRADING=None)
    arming = svc.status()["extra"]["arming"]
    assert (arming["venue"], arming["mode"], arming["url"]) == ("simulator", "off", sim.url)
    metrics = svc.get("/metrics").text
    assert 'tm_executor_venue_info{mode="off",venue="simulator"} 1.0' in metrics
    svc.wait_for(lambda: "executor.venue" in svc.logs(), 10, "the start-up venue line")
    line = next(json.loads(x) for x in svc.logs().splitlines() if "executor.venue" in x)
    assert (line["venue"], line["mode"], line["url"]) == ("simulator", "off", sim.url)


async def test_a_start_on_a_real_venue_writes_an_arming_audit_row(sim, redis_url, namespace,
                                                                   pg_url):
    """Built on a testnet URL (nothing is sent: the service is not started), the executor queues
    an ``arming`` row that its writer lands in PostgreSQL."""
    migrate(pg_url)
    s = executor_settings(sim, redis_url, namespace, bybit_rest_url=BYBIT_TESTNET_REST,
                          bybit_private_ws_url=BYBIT_TESTNET_PRIVATE_WS, live_trading="testnet",
                          database_url=pg_url, **INTENT_KEYS)
    svc = ExecutorService(s)
    assert (svc.arming.venue, svc.arming.mode) == ("testnet", "testnet")
    assert svc.audit is not None
    await svc.audit.drain(timeout_s=30)
    engine = make_engine(pg_url)
    try:
        (row,) = await list_audit(engine, kind="arming")
    finally:
        await engine.dispose()
        await svc.bus.close()
    assert row.why == "TM_LIVE_TRADING=testnet" and "testnet" in row.what
    assert BYBIT_TESTNET_REST in row.what and row.source == "executor" and row.who
    assert abs(row.at_ms - time.time() * 1000) < 60_000


def test_mainnet_without_a_database_is_refused(sim, redis_url, namespace):
    from tm_common.errors import ConfigError

    s = executor_settings(sim, redis_url, namespace, bybit_rest_url=BYBIT_MAINNET_REST,
                          ws_enabled=False, live_trading="armed", database_url=None,
                          **INTENT_KEYS)
    with pytest.raises(ConfigError, match="TM_DATABASE_URL"):
        ExecutorService(s)
    asyncio.run(asyncio.sleep(0))


def test_the_refusal_comes_before_an_embedded_redis_would_start(tmp_path):
    """Without TM_REDIS_URL the bus would start the embedded Redis: the arming check runs
    first, so nothing is started (no server state under the data dir)."""
    p = _run_executor(TM_REDIS_URL=None, TM_DATA_DIR=str(tmp_path / ".tm"),
                      TM_EXECUTOR_BYBIT_REST_URL=BYBIT_MAINNET_REST)
    assert p.returncode == 2 and "TM_LIVE_TRADING=armed" in p.stderr
    assert not list(tmp_path.rglob("*redis*")), list(tmp_path.rglob("*"))


def test_a_real_venue_without_the_intents_signing_keys_exits_at_start_with_one_line():
    """Armed for testnet but without the keys risk signs intents and breaker changes with: the
    executor would trade on whatever anyone with XADD rights adds to risk.order. Exit 2, one
    line naming both variables, before any network call."""
    p = _run_executor(TM_EXECUTOR_BYBIT_REST_URL=BYBIT_TESTNET_REST, TM_LIVE_TRADING="testnet",
                      TM_EXECUTOR_BYBIT_PRIVATE_WS_URL=BYBIT_TESTNET_PRIVATE_WS,
                      TM_EXECUTOR_SIGNING_KEY_RISK_BREAKER="b" * 40)
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "TM_EXECUTOR_SIGNING_KEY_RISK_ORDER" in lines[0] and "BREAKER" not in lines[0]
    assert "b" * 40 not in p.stderr
