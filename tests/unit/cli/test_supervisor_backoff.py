"""Restart backoff with a test clock: doubles per crash, capped, reset after a stable run."""

from __future__ import annotations

import sys

from tm_app.stack.supervisor import ProcessSpec, Supervisor


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _crash_and_poll(sup: Supervisor, clock: Clock, name: str, ran_s: float = 0.0) -> float:
    p = sup.procs[name]
    p.popen.wait(10)
    clock.t += ran_s
    assert sup.poll()                      # reaped: restart scheduled, not yet started
    assert not p.running and p.next_start_at is not None
    delay = p.next_start_at - clock.t
    clock.t = p.next_start_at
    assert sup.poll() and p.running        # started once the delay has passed
    return delay


def test_backoff_doubles_caps_and_resets(tmp_path):
    clock = Clock()
    spec = ProcessSpec("crash", [sys.executable, "-c", "raise SystemExit(3)"])
    sup = Supervisor([spec], backoff_initial_s=0.5, backoff_max_s=4.0, stable_after_s=60.0,
                     clock=clock, state_path=tmp_path / "state.json")
    sup.start()
    try:
        delays = [_crash_and_poll(sup, clock, "crash") for _ in range(6)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        assert sup.procs["crash"].restarts == 6
        assert sup.procs["crash"].last_exit_code == 3
        # A run longer than stable_after_s is a fresh failure: back to the initial delay.
        assert _crash_and_poll(sup, clock, "crash", ran_s=61.0) == 0.5
    finally:
        sup.stop()
    assert not (tmp_path / "state.json").exists()


def test_no_restart_before_the_delay(tmp_path):
    clock = Clock()
    sup = Supervisor([ProcessSpec("c", [sys.executable, "-c", "pass"])], clock=clock,
                     backoff_initial_s=1.0)
    sup.start()
    try:
        sup.procs["c"].popen.wait(10)
        sup.poll()
        clock.t += 0.9
        assert not sup.poll() and not sup.procs["c"].running
    finally:
        sup.stop()
