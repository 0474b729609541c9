"""Fault drills (slow, CI runs them): the reduced ``make faults``. One command run as a user
would run it, with short windows and a short PostgreSQL outage:

- a lockstep mesh replay of 80 bar times of shipped history against the exchange sim, clean;
- the same with the private Redis (AOF, fsync always) restarted twice mid-run (SHUTDOWN, then
  SIGKILL);
- the same with the private PostgreSQL stopped 10 s mid-run (while the window trades);
- the same with the sim injecting 10 % rate limits, 10 % HTTP 5xx and 10 % timeouts (held
  1 s, past the executor's 0.5 s timeout);
- ingest in live mode over 40 bar times with the sim dropping the WebSocket at 10 % per push.

The command checks each drill against its clean run (positions, equity, approved orders, fills,
venue orders; no orderLinkId twice; every input handled or dead-lettered; database rows) and
exits non-zero with one line per broken check; the tests read its JSON summary. Real processes,
private ``redis-server`` and PostgreSQL cluster (never the shared ones), ports offset by 700.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
BARS = 80            # the window trades from about bar 60


@pytest.fixture(scope="module")
def drills(tmp_path_factory):
    for tool in ("redis-server", "psql"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not on PATH: the fault drills need it")
    tmp = tmp_path_factory.mktemp("faults")
    report = tmp / "faults.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "tm_app.faults", "--bars", str(BARS), "--pg-outage-s", "10",
         "--pg-at", "0.7", "--venue-client-timeout-s", "0.5", "--venue-hold-s", "1",
         "--ws-bars", "40", "--port-offset", "700",
         "--data-dir", str(tmp / "drill"), "--report", str(report)],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=1400, check=False)
    secs = time.monotonic() - t0
    out = p.stdout + p.stderr
    summary = json.loads(report.read_text()) if report.exists() else {}
    print(f"\nfault drills: {secs:.0f}s in all\n{p.stdout[-5000:]}")
    return p, out, summary


def _drill(drills, name: str) -> dict:
    _, out, summary = drills
    assert name in summary.get("drills", {}), out[-6000:]
    d = summary["drills"][name]
    broken = [f"{c['name']}: {c['detail']}" for c in d["checks"] if not c["ok"]]
    assert not broken, broken
    return d["figures"]


def test_command_exits_zero_without_traceback(drills):
    p, out, summary = drills
    assert p.returncode == 0, out[-6000:]
    assert "Traceback" not in out, out[-6000:]
    assert summary["failures"] == []
    assert summary["clean"]["venue_orders"] > 0, "the window must trade"


def test_redis_restarted_mid_run_changes_nothing(drills):
    f = _drill(drills, "redis-restart")
    assert len(f["outages"]) == 2
    assert f["transport_errors"] > 0, "the services must have seen Redis go away"
    assert f["venue_orders"] > 0


def test_postgres_outage_keeps_trading_and_loses_no_row(drills):
    f = _drill(drills, "postgres-outage")
    assert f["orders_during_outage"] > 0
    assert sum(f["db_write_failures_retried"].values()) > 0
    assert f["rows"]["fills"] > 0 and f["rows"]["portfolio_snapshots"] == BARS
    assert f["rows"]["bars"] == 3 * BARS


def test_venue_faults_give_the_same_orders(drills):
    f = _drill(drills, "venue-faults")
    assert all(f["injected"].get(k, 0) > 0 for k in ("rate_limit", "http_5xx", "timeout"))
    assert sum(f["executor_errors_retried"].values()) > 0
    assert f["venue_orders"] > 0


def test_websocket_drops_lose_and_repeat_no_bar(drills):
    f = _drill(drills, "ws-drops")
    assert f["ws_drops_injected"] > 0 and f["ws_connects"] > 1
    assert f["backfilled_bars"] > 0


def test_broken_check_exits_one_with_a_reason():
    """A drill's comparison names the first difference in one line."""
    from tm_app.faults_compare import first_diff, same

    c = same("venue orders", [("a", 1), ("b", 2)], [("a", 1), ("b", 3)], "orders")
    assert not c.ok and "item 1" in c.detail
    assert first_diff([1, 2], [1, 2, 3]).startswith("clean has 2, drill 3")


def test_bad_drill_name_exits_two(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    p = subprocess.run([sys.executable, "-m", "tm_app.faults", "--drills", "nope"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 2 and "unknown drill" in p.stderr
    assert Path(tmp_path).exists()
