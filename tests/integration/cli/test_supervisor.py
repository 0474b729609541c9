"""Supervisor on real processes: start, kill -9 → restart, stop with SIGTERM then SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pytest
from tm_app.stack.supervisor import ProcessSpec, Supervisor


@pytest.fixture
def run_supervisor(tmp_path):
    """Start a Supervisor's ``run()`` in a thread; always stopped at teardown."""
    started: list[tuple[Supervisor, threading.Thread]] = []

    def start(specs, **kw) -> Supervisor:
        kw.setdefault("state_path", tmp_path / "supervisor.json")
        kw.setdefault("log_dir", tmp_path / "logs")
        kw.setdefault("backoff_initial_s", 0.1)
        kw.setdefault("poll_interval_s", 0.05)
        kw.setdefault("grace_s", 5.0)
        sup = Supervisor(specs, **kw)
        t = threading.Thread(target=sup.run, daemon=True)
        t.start()
        started.append((sup, t))
        return sup

    yield start
    for sup, t in started:
        sup.request_stop()
        t.join(30)
        sup.stop()


def test_kill_9_restarts_and_stop_leaves_no_process(run_supervisor, fk, tmp_path):
    a, b = fk.spec("alpha"), fk.spec("beta")
    sup = run_supervisor([a, b])
    for spec in (a, b):
        fk.wait(lambda s=spec: fk.status(s.port), what=f"{spec.name} /status")
    first_pid = sup.procs["alpha"].pid
    assert fk.status(a.port)["pid"] == first_pid
    state = json.loads((tmp_path / "supervisor.json").read_text())
    assert state["processes"]["alpha"]["pid"] == first_pid
    assert state["processes"]["beta"]["port"] == b.port

    os.kill(first_pid, signal.SIGKILL)

    fk.wait(lambda: sup.procs["alpha"].restarts == 1 and sup.procs["alpha"].running,
            what="alpha restarted")
    new_pid = sup.procs["alpha"].pid
    assert new_pid != first_pid
    assert sup.procs["alpha"].last_exit_code == -signal.SIGKILL
    fk.wait(lambda: (fk.status(a.port) or {}).get("pid") == new_pid, what="alpha serves again")
    assert sup.procs["beta"].restarts == 0
    state = fk.wait(lambda: json.loads((tmp_path / "supervisor.json").read_text()),
                    what="state file")
    fk.wait(lambda: json.loads((tmp_path / "supervisor.json").read_text())
            ["processes"]["alpha"]["restarts"] == 1, what="restart count in the state file")

    beta_pid = sup.procs["beta"].pid
    sup.request_stop()
    fk.wait(lambda: not (tmp_path / "supervisor.json").exists(), what="state file removed")
    for pid in (first_pid, new_pid, beta_pid):
        assert not fk.alive(pid), f"pid {pid} survived stop()"
    assert fk.status(a.port) is None and fk.status(b.port) is None
    # A clean SIGTERM exit, not SIGKILL: the fake service handles SIGTERM.
    assert sup.procs["beta"].last_exit_code == 0


def test_stop_escalates_to_sigkill_after_grace(run_supervisor, fk):
    stubborn = fk.spec("stubborn", FAKE_IGNORE_SIGTERM="1")
    sup = run_supervisor([stubborn], grace_s=0.5)
    fk.wait(lambda: fk.status(stubborn.port), what="stubborn /status")
    pid = sup.procs["stubborn"].pid
    t0 = time.monotonic()
    sup.stop()
    elapsed = time.monotonic() - t0
    assert not fk.alive(pid)
    assert sup.procs["stubborn"].last_exit_code == -signal.SIGKILL
    assert 0.4 <= elapsed < 5.0


def test_crash_loop_backs_off_and_counts_restarts(run_supervisor, fk):
    crasher = ProcessSpec("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"])
    sup = run_supervisor([crasher], backoff_initial_s=0.05, backoff_max_s=0.4)
    time.sleep(2.0)
    p = sup.procs["crasher"]
    assert p.last_exit_code == 3
    # Without backoff it would restart every poll (~40 times); with 0.05→0.4 s about 6-8 times.
    assert 3 <= p.restarts <= 12, p.restarts
    assert p.backoff_s == pytest.approx(0.4)


def test_missing_executable_is_retried_not_fatal(run_supervisor, fk, tmp_path):
    ok = fk.spec("ok")
    ghost = ProcessSpec("ghost", [str(tmp_path / "no-such-binary")])
    sup = run_supervisor([ghost, ok])
    fk.wait(lambda: fk.status(ok.port), what="the healthy process still starts")
    fk.wait(lambda: sup.procs["ghost"].restarts >= 1, what="ghost retried")
    assert "cannot start" in sup.procs["ghost"].last_error


def test_each_exit_is_logged_once_with_the_childs_last_line(run_supervisor, tmp_path, caplog):
    """A crash loop says why: "<svc> exited with N: <its last log line>", once per exit; a run
    that wrote nothing does not repeat the previous run's line."""
    marker = tmp_path / "ran-once"
    code = (f"import pathlib, sys; m = pathlib.Path({str(marker)!r})\n"
            "if not m.exists():\n"
            "    m.touch(); print('starting'); print('OSError: [Errno 98] address already in use')\n"
            "sys.exit(3)")
    crasher = ProcessSpec("crasher", [sys.executable, "-c", code])
    caplog.set_level("WARNING", logger="tm.supervisor")
    sup = run_supervisor([crasher], backoff_initial_s=0.05, backoff_max_s=0.2)
    deadline = time.monotonic() + 15
    while sup.procs["crasher"].restarts < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    exits = [r.getMessage() for r in caplog.records if "crasher exited with 3" in r.getMessage()]
    assert exits[0].startswith("crasher exited with 3: OSError: [Errno 98] address already in "
                               "use; restart 1 in "), exits
    assert all(m.startswith("crasher exited with 3: (no output); restart") for m in exits[1:])
    assert len(exits) >= 3
    state = json.loads((tmp_path / "supervisor.json").read_text())["processes"]["crasher"]
    assert state["last_exit_code"] == 3 and state["last_output"] is None
