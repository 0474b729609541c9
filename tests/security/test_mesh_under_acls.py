"""The whole mesh on the embedded Redis with its ACLs on (the default of ``tm up``/``tm demo``):
every service as its own Redis user (the supervisor scopes each child's URL), a window that
trades, so every stream of the pipeline is written and read under least privilege: bars,
regime, signal, sizing, orders, reports, fills, snapshots, the executor's venue stream. Redis
refuses nothing (its ACL LOG stays empty) and the run is complete. Slow: trains a fast model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis
from tm_common.embedded import ensure_embedded_redis, stop_embedded_redis
from tm_common.settings import CommonSettings
from tm_common.testing.promote import force_signal_model

pytestmark = pytest.mark.slow
START_MS = 1_735_689_600_000                 # 2025-01-01, after the training cut-off
BARS = 100
# lower cascade thresholds so that the window trades (tests/e2e/test_main_job_and_parity.py)
TRADE_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_SIZER_BLENDED_CONFIDENCE": "0.08",
             "TM_SIZER_KELLY_MIN_EACH": "1", "TM_SIZER_KELLY_PRIOR_B": "1.5",
             "TM_LOG_LEVEL": "WARNING"}



def _free_offset() -> int:
    """A port offset under which every service port (8101-8110) is free (others run meshes)."""
    from tm_app.stack.ports import is_free

    for offset in range(1370, 20000, 1000):
        if all(is_free(port + offset) for port in range(8100, 8111)):
            return offset
    raise AssertionError("no free port range")


def test_every_service_runs_as_its_own_redis_user(tmp_path):
    from tm_app.backtest import RunConfig
    from tm_app.mesh import run_mesh

    db_url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(tmp_path / "train"), TM_DATABASE_URL=db_url)
    p = subprocess.run([sys.executable, "-m", "tm_trainer", "--instruments", "BTCUSDT", "--fast",
                        "--source", "files", "--train-end", "2024-12-01", "--no-publish",
                        "--no-progress"], env=env, capture_output=True, text=True, timeout=1200,
                       check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    force_signal_model(db_url)
    settings = CommonSettings.from_values(data_dir=tmp_path / "tm", redis_url=None)
    admin = ensure_embedded_redis(settings)
    try:
        cfg = RunConfig(start_ms=START_MS, end_ms=START_MS + BARS * 4 * 3600_000,
                        database_url=db_url, symbols=("BTCUSDT",),
                        extra_env=TRADE_ENV)
        r = redis.Redis.from_url(admin, decode_responses=True)
        users: set[str] = set()                   # who is connected, seen while it runs

        def watch(sup, extra) -> None:
            users.update(c["user"] for c in r.client_list())
        run = run_mesh(cfg, redis_url=admin, data_dir=tmp_path / "mesh",
                       port_offset=_free_offset(), log=lambda m: None, on_tick=watch)
        denied = r.acl_log()
        r.close()
        assert denied == [], denied[:3]
        services = {"ingest", "regime", "signal", "sizer", "risk", "executor", "portfolio"}
        assert services <= users, users
        rec = run.record
        assert len(rec.of("md.bar")) >= BARS                 # the end bar is inclusive
        for stream in ("regime.state", "signal.tl", "sizing.target", "portfolio.snapshot"):
            assert rec.of(stream), f"nothing on {stream}"
        assert rec.of("risk.order") and rec.of("exec.report"), "the window must trade"
    finally:
        stop_embedded_redis(settings)
