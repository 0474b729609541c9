"""Chaos (slow, CI runs it): the reduced ``make chaos``. A lockstep mesh replay of 100 bar times
of shipped history against the exchange sim, run clean and then with 9 kills: every service
(regime, signal, sizer, risk, executor, portfolio, ingest) ``kill -9``'d once at a random moment
and two executor crashes between sending an order and handling the answer. The command itself
checks every invariant (same venue orders, executions, positions, equity and events as the clean
run; no duplicate orderLinkId; every consumer group drained; no dead letter) and exits non-zero
with one line per broken check; the test runs it as a user would and reads its JSON summary.

Real processes, the real Redis (``TM_TEST_REDIS_URL`` or the embedded one), a throwaway SQLite
registry trained by the command itself (``--fast``), ports offset by 600."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from tm_app.chaos_checks import RunView, compare
from tm_app.chaos_plan import AFTER_SEND, make_plan

SERVICES = ("regime", "signal", "sizer", "risk", "executor", "portfolio", "ingest")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_kills_change_nothing(redis_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    report = tmp_path / "chaos.json"
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "tm_app.chaos", "--bars", "100", "--kills", "9",
         "--after-send", "2", "--seed", "2", "--redis-url", redis_url,
         "--data-dir", str(tmp_path / "drill"), "--port-offset", "600", "--report", str(report)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1100, check=False)
    secs = time.monotonic() - t0
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert "Traceback" not in out, out[-6000:]
    s = json.loads(report.read_text())
    print(f"\nchaos test: {secs:.0f} s in all; replay clean {s['replay_s']['clean']} s, "
          f"chaos {s['replay_s']['chaos']} s; kills {s['kills_per_service']}")
    assert s["failures"] == []
    assert s["kills_done"] == s["kills_planned"] == 9
    killed = {k["service"] for k in s["kills"]}
    assert killed == set(SERVICES), killed
    assert s["after_send_crashes"] == 2
    # every kill was a death the supervisor saw and restarted
    assert sum(s["restarts"].values()) == 9, s["restarts"]
    assert s["restarts"]["executor"] >= 3, s["restarts"]
    # the window trades, and both runs agree on it
    assert s["venue_orders"]["clean"] == s["venue_orders"]["chaos"] > 0
    assert s["fills"]["clean"] == s["fills"]["chaos"] > 0
    assert s["equity"]["clean"] == s["equity"]["chaos"]
    assert s["dead_letters"] == {"clean": 0, "chaos": 0}
    assert "all invariants hold" in p.stdout


def _view(orders, events, groups=(), dead=()) -> RunView:
    v = RunView(orders=[{"orderLinkId": o, "qty": "1"} for o in orders])
    v.entries = {"risk.order": [("order.approved", f"id-{e}", f"X:{e}", "c", "1", f'{{"n":{e}}}')
                                for e in events]}
    v.groups = [{"stream": "risk.order", "name": "executor", "lag": lag, "pending": pend}
                for lag, pend in groups]
    v.dead_letters = [{"stream": "risk.order", "group": "executor", "type": "order.approved",
                       "correlation_id": "X:9", "reason": r} for r in dead]
    return v


def test_the_checks_name_each_broken_invariant():
    """The comparison itself (pure): one line per broken check, nothing when all hold."""
    clean = _view(["a", "b"], [1, 2], groups=[(0, 0)])
    assert compare(clean, _view(["a", "b"], [1, 2], groups=[(0, 0)])) == ([], [])
    assert compare(clean, _view(["a", "b"], [2, 1], groups=[(0, 0)]))[1] == [
        "risk.order: the same events as the clean run in another order"]
    broken, _ = compare(clean, _view(["a", "b", "b"], [1], groups=[(0, 1)],
                                     dead=["delivery cap 5 exceeded"]))
    text = "\n".join(broken)
    assert "chaos run: duplicate orderLinkId at the venue: b ×2" in text
    assert "chaos run: consumer groups not drained: risk.order/executor lag=0 pending=1" in text
    assert "venue orders differ: 2 vs 3" in text
    assert "stream risk.order differs from the clean run (2 vs 1 events: 1 missing, 0 extra" in text
    assert "dead letter on risk.order (executor, order.approved X:9): delivery cap 5" in text
    assert len(broken) == 5


def test_the_kill_schedule_is_a_function_of_the_seed():
    a = make_plan(5, 50, 300)
    assert a == make_plan(5, 50, 300) and a != make_plan(6, 50, 300)
    assert len(a) == 50 and a == sorted(a, key=lambda k: (k.at_step, k.delay_s))
    assert {k.service for k in a} == set(SERVICES)
    sends = [k for k in a if k.mode == AFTER_SEND]
    assert len(sends) == 5 and {k.service for k in sends} == {"executor"}
    assert all(61 <= k.at_step <= 240 for k in sends)           # where the window trades
    assert all(1 <= k.at_step <= 270 and 0 <= k.delay_s <= 0.3 for k in a)
    assert make_plan(1, 0, 100) == []
    with pytest.raises(ValueError):
        make_plan(1, 3, 100, services=("exchange_sim",))
