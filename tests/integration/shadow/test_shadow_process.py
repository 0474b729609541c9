"""``tm shadow`` as an operator runs it: a process beside production (here, production's market
streams in a test namespace) that serves /healthz, /readyz, /metrics and /status, trades every bar
time, and leaves its forward record in the registry when stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tm_app.backtest import RunConfig
from tm_common.db import make_engine
from tm_common.models.evidence import shadow_records
from tm_common.models.registry import ModelRegistry
from tm_common.testing.processes import ServiceProcess

from .conftest import N, publish_market, window


def test_tm_shadow_serves_trades_and_records_live_evidence(redis_url, namespace, registry_url,
                                                           tmp_path):
    start, end = window()
    asyncio.run(publish_market(redis_url, namespace,
                               RunConfig(start_ms=start, end_ms=end, database_url=registry_url)))
    tm = str(Path(sys.executable).parent / "tm")
    proc = ServiceProcess([tm, "shadow", "--candidate", "v1", "--mode", "live"], {
        "TM_REDIS_URL": redis_url, "TM_DATABASE_URL": registry_url, "TM_NAMESPACE": namespace,
        "TM_LOG_LEVEL": "WARNING", "TM_SHADOW_FLUSH_AFTER_S": "1"}, tmp_path / "shadow.log")
    proc.start(healthy_within_s=60, ready_within_s=60)
    try:
        st = proc.wait_for(lambda: (s := proc.status()["extra"])["bar_times"] == N and s,
                           timeout_s=120, what=f"the book to trade {N} bar times")
        assert st["candidate"] == "v1" and st["namespace"] == f"{namespace}shadow:v1:"
        assert st["mode"] == "live" and st["mirror"]["malformed"] == 0
        proc.wait_for(lambda: f"tm_shadow_bar_times {float(N)}" in proc.get("/metrics").text,
                      timeout_s=10, what="the gauges to follow the book")
        assert proc.stop() == 0
    finally:
        proc.stop()

    async def records():
        engine = make_engine(registry_url)
        try:
            return shadow_records((await ModelRegistry(engine).get("v1")).metrics)
        finally:
            await engine.dispose()
    [r] = asyncio.run(records())
    assert (r.mode, r.bars, r.first_bar_ms, r.last_bar_ms) == ("live", N, start, end)
    assert r.forward


def test_tm_shadow_refuses_a_bad_configuration(tmp_path):
    import subprocess
    tm = str(Path(sys.executable).parent / "tm")
    env = {"PATH": "/usr/bin:/bin", "TM_SHADOW_BOOK_NAMESPACE": "tm:", "TM_DATA_DIR": str(tmp_path)}
    r = subprocess.run([tm, "shadow"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "must contain 'shadow'" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([tm, "shadow", "--mode", "moon"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "--mode must be paper, live or replay" in r.stderr
