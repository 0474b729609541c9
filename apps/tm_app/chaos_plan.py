"""The chaos drill's kill schedule and the monkey that carries it out during a mesh replay.

A :class:`Kill` is due once the replay has published bar time ``at_step`` (0-based index in the
window) and ``delay_s`` more seconds have passed, a random moment inside that bar's chain. Two
modes: ``sigkill`` (``kill -9`` of the service's process group) and ``after-send`` (the executor
is armed to SIGKILL itself right after the venue accepted its next order, before the answer is
handled: the file named by ``TM_EXECUTOR_CHAOS_CRASH_AFTER_SEND_FILE``). The schedule is a pure function
of the seed; the moment a kill lands inside a chain depends on the machine's timing.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tm_app.stack.supervisor import Supervisor

BAR_MS = 4 * 3600 * 1000
TARGETS = ("regime", "signal", "sizer", "risk", "executor", "portfolio", "ingest")
SIGKILL, AFTER_SEND = "sigkill", "after-send"
# The risk service approves no order before its VaR has 60 aligned 4 h returns of the replay.
FIRST_ORDER_STEP = 61


@dataclass(frozen=True)
class Kill:
    at_step: int          # the replay has published this bar time (0-based index)
    delay_s: float        # then this many more seconds
    service: str
    mode: str = SIGKILL

    def label(self) -> str:
        return f"{self.service}{' (after send)' if self.mode == AFTER_SEND else ''}"


def make_plan(seed: int, kills: int, steps: int, *, services: Sequence[str] = TARGETS,
              after_send: int | None = None, max_delay_s: float = 0.3,
              first_order_step: int = FIRST_ORDER_STEP) -> list[Kill]:
    """``kills`` kills over a window of ``steps`` bar times, reproducible from ``seed``.

    ``after_send`` of them (default ``max(1, kills // 10)`` when the executor is a target) are
    executor crashes between sending an order and handling the answer, armed at bar times drawn
    from ``first_order_step`` (or mid-window, if earlier) to 80 % of the window, so that an
    order follows. The rest are ``kill -9`` of every service in ``services`` once (if there are
    that many), then of services drawn uniformly, at bar times drawn uniformly from the first
    90 % of the window (a later kill could land after the last bar). ``max_delay_s``: the
    random moment after the bar time's publication."""
    if kills < 0 or steps < 3:
        raise ValueError(f"need kills >= 0 and a window of at least 3 bar times (got {steps})")
    unknown = set(services) - set(TARGETS)
    if unknown or not services:
        raise ValueError(f"services must be among {', '.join(TARGETS)} (got {sorted(unknown)})")
    rng = random.Random(seed)
    if after_send is None:
        after_send = max(1, kills // 10) if "executor" in services and kills else 0
    after_send = min(after_send, kills)
    if after_send and "executor" not in services:
        raise ValueError("after-send kills need the executor among the services")
    last = max(1, int(steps * 0.9))
    last_send = max(1, int(steps * 0.8))
    first_send = max(1, min(first_order_step, steps // 2, last_send))
    plan = [Kill(rng.randint(first_send, last_send), round(rng.uniform(0, max_delay_s), 3),
                 "executor", AFTER_SEND) for _ in range(after_send)]
    n = kills - after_send
    # Every service once (when there are enough kills), then drawn at random.
    who = rng.sample(list(services), len(services)) if n >= len(services) else []
    who += [rng.choice(list(services)) for _ in range(n - len(who))]
    plan += [Kill(rng.randint(1, last), round(rng.uniform(0, max_delay_s), 3), w) for w in who]
    return sorted(plan, key=lambda k: (k.at_step, k.delay_s))


@dataclass
class Done:
    kill: Kill
    step: int             # the bar time the replay was at when it landed
    at_s: float           # seconds since the replay started
    pid: int | None


@dataclass
class ChaosMonkey:
    """Runs ``plan`` from :func:`tm_app.mesh.run_mesh`'s ``on_tick`` hook.

    The replay's position is ``steps_fn()`` (e.g. the length of ``md.bar`` over the number of
    instruments, minus one) or else ingest's ``/status``, which may answer late under load.

    A kill waits for its bar time and delay, then for its target to be running (a service still
    restarting from the previous kill is not killed again: that would kill nothing); kills of
    other targets go on meanwhile. One after-send crash is armed at a time; it counts as done
    when the executor took it."""

    plan: list[Kill]
    start_ms: int
    arm_file: Path
    log: Callable[[str], None] = print
    steps_fn: Callable[[], int] | None = None     # the replay's bar time, read from the bus
    done: list[Done] = field(default_factory=list)
    ingest: Supervisor | None = None
    step: int = -1
    _queue: list[Kill] = field(default_factory=list)
    _due: dict[int, float] = field(default_factory=dict)
    _killed: list = field(default_factory=list)   # Popen objects already sent SIGKILL
    _armed: tuple[Kill, float] | None = None
    _t0: float | None = None
    _last_progress: float = 0.0

    def __post_init__(self) -> None:
        self._queue = list(self.plan)
        self.arm_file.unlink(missing_ok=True)

    def on_ingest(self, sup: Supervisor) -> None:
        self.ingest = sup

    def tick(self, sup: Supervisor, extra: dict) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        if self.steps_fn is not None:
            self.step = max(self.step, self.steps_fn())
        else:
            last = extra.get("last_bar_open_time_ms") or {}
            if last:
                self.step = max(self.step, (min(last.values()) - self.start_ms) // BAR_MS)
        if now - self._last_progress > 10:
            self._last_progress = now
            self.log(f"  replay at bar {self.step + 1}; kills {len(self.done)}/{len(self.plan)}")
        self._check_armed(now)
        for k in [k for k in self._queue if self.step >= k.at_step]:
            due = self._due.setdefault(id(k), now + k.delay_s)
            if now >= due and self._fire(sup, k, now):
                self._queue = [q for q in self._queue if q is not k]
                del self._due[id(k)]

    def _fire(self, sup: Supervisor, k: Kill, now: float) -> bool:
        """Carry ``k`` out now if it can be (False: not yet, it stays queued)."""
        t = now - (self._t0 or now)
        if k.mode == AFTER_SEND:
            if self._armed is not None:
                return False                     # one armed crash at a time
            self.arm_file.parent.mkdir(parents=True, exist_ok=True)
            self.arm_file.write_text(f"{k}\n")
            self._armed = (k, now)
            self.log(f"  [{t:6.1f}s] bar {self.step + 1}: executor armed to crash after its "
                     "next order is sent")
            return True
        proc = self._proc(sup, k.service)
        if proc is None or proc.popen is None or proc.popen.poll() is not None \
                or any(proc.popen is k for k in self._killed):
            return False                         # down or dying: wait until it is back
        self._killed.append(proc.popen)
        pid = proc.pid
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        except PermissionError:
            os.kill(pid, signal.SIGKILL)
        self.done.append(Done(k, self.step, t, pid))
        self.log(f"  [{t:6.1f}s] bar {self.step + 1}: kill -9 {k.service} (pid {pid}); "
                 f"{len(self.done)}/{len(self.plan)}")
        return True

    def finish(self) -> None:
        """After the replay: an armed crash that never fired stays not done (and disarmed)."""
        self._check_armed(time.monotonic())
        if self._armed is not None:
            self.log("  the last armed after-send crash did not fire: no order followed it")
        self.arm_file.unlink(missing_ok=True)
        self._armed = None

    def _check_armed(self, now: float) -> None:
        if self._armed is not None and not self.arm_file.exists():
            k, _ = self._armed
            self._armed = None
            self.done.append(Done(k, self.step, now - (self._t0 or now), None))
            self.log(f"  [{now - (self._t0 or now):6.1f}s] bar {self.step + 1}: executor crashed "
                     f"between sending an order and handling the answer; "
                     f"{len(self.done)}/{len(self.plan)}")

    def _proc(self, sup: Supervisor, name: str):
        if name in sup.procs:
            return sup.procs[name]
        if self.ingest is not None:
            return self.ingest.procs.get(name)
        return None

    def per_service(self) -> dict[str, int]:
        return dict(sorted(Counter(d.kill.label() for d in self.done).items()))

    @property
    def not_done(self) -> list[Kill]:
        fired = [d.kill for d in self.done]
        out = list(self.plan)
        for k in fired:
            out.remove(k)
        return out
