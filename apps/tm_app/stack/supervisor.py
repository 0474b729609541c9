"""A small process supervisor for the local stack: start, restart with backoff, stop.

Each :class:`ProcessSpec` runs as its own OS process in its own session (process group), so a
Ctrl-C in the terminal reaches only the supervisor, which then stops the children in order:
SIGTERM to each group, wait ``grace_s``, SIGKILL what is left. A child that exits is restarted
after a backoff that doubles from ``backoff_initial_s`` up to ``backoff_max_s`` and resets once
the child has stayed up ``stable_after_s``. Each exit is logged once with the last line the
child wrote to its log (``<svc> exited with 3: <line>; restart 4 in 8.0 s``), so a crash loop
shows its cause where the user looks. The supervisor's view (pids, ports, restarts, that last
line) is written to a JSON state file on every change, for ``tm status`` and ``tm down``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tm_common.files import replace_file

log = logging.getLogger("tm.supervisor")


@dataclass(frozen=True)
class ProcessSpec:
    """A process to supervise. ``env`` is added to the supervisor's own environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    cwd: str | None = None


@dataclass
class ProcessState:
    """What the supervisor knows about one process. Times: ``time.monotonic`` seconds."""

    spec: ProcessSpec
    popen: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float | None = None
    started_at_ms: int | None = None
    last_exit_code: int | None = None
    last_error: str | None = None
    next_start_at: float | None = None
    backoff_s: float = 0.0
    exit_seen: bool = False  # this popen's exit was handled (restart scheduled)
    log_file: IO | None = None
    log_offset: int = 0      # size of the log when this popen started: its output follows
    last_output: str | None = None  # the last line the child wrote before it exited

    @property
    def pid(self) -> int | None:
        if self.popen is None or not self.running:
            return None
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.returncode is None

    def as_dict(self) -> dict:
        status = "running" if self.running else ("restarting" if self.next_start_at else "stopped")
        return {"pid": self.pid, "port": self.spec.port, "argv": list(self.spec.argv),
                "status": status, "restarts": self.restarts, "started_at_ms": self.started_at_ms,
                "last_exit_code": self.last_exit_code, "last_error": self.last_error,
                "last_output": self.last_output}


def _write_json(path: Path, doc: dict) -> None:
    replace_file(path, json.dumps(doc, indent=2))  # `tm status` never reads half a file


def child_env(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for the child ``name``, its ``TM_REDIS_URL`` scoped to its own Redis user: a
    ``tm-admin`` URL (the local stack's embedded server) becomes ``name``'s own
    (:func:`tm_common.bus.acl.scoped_url`; no credentials for a process without a Redis user),
    so no child of a supervisor holds the admin password. Other URLs are left as they are."""
    from tm_common.bus.acl import scoped_url

    out = dict(env)
    if out.get("TM_REDIS_URL"):
        out["TM_REDIS_URL"] = scoped_url(out["TM_REDIS_URL"], name.replace("-", "_"))
    return out


class Supervisor:
    """Runs ``specs`` as child processes and keeps them running until :meth:`stop`.

    ``state_path``: JSON state file (``None`` = none). ``log_dir``: each child's stdout/stderr
    goes to ``<log_dir>/<name>.log`` (``None`` = inherit the supervisor's). ``grace_s`` (default
    10 s) is how long :meth:`stop` waits after SIGTERM before SIGKILL. ``extra_state``: fields
    added to the state document (e.g. the stack's port offset and admin token file).
    """

    def __init__(self, specs: Sequence[ProcessSpec], *, state_path: Path | None = None,
                 log_dir: Path | None = None, grace_s: float = 10.0,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 stable_after_s: float = 30.0, poll_interval_s: float = 0.2,
                 base_env: Mapping[str, str] | None = None,
                 extra_state: Mapping[str, object] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate process names in {names}")
        self.procs: dict[str, ProcessState] = {s.name: ProcessState(s) for s in specs}
        self.state_path = Path(state_path) if state_path else None
        self.log_dir = Path(log_dir) if log_dir else None
        self.grace_s = grace_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stable_after_s = stable_after_s
        self.poll_interval_s = poll_interval_s
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.clock = clock
        self.extra_state = dict(extra_state or {})
        self.started_at_ms = int(time.time() * 1000)
        self._stop = threading.Event()
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start every process (in spec order) and write the state file."""
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for p in self.procs.values():
            self._spawn(p)
        self.write_state()

    def poll(self) -> bool:
        """Reap exited children and restart those whose backoff has elapsed; ``True`` if changed."""
        now = self.clock()
        changed = False
        for p in self.procs.values():
            if p.popen is not None and not p.exit_seen and p.popen.poll() is not None:
                p.exit_seen = True
                self._exited(p, p.popen, now)
                changed = True
            elif p.next_start_at is not None and now >= p.next_start_at:
                p.restarts += 1
                self._spawn(p)
                changed = True
        if changed:
            self.write_state()
        return changed

    def run(self) -> None:
        """:meth:`start`, then supervise until SIGTERM/SIGINT/SIGHUP or :meth:`request_stop`;
        then stop.

        Signal handlers are installed only when called from the main thread.
        """
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                previous[sig] = signal.signal(sig, lambda *_: self.request_stop())
        try:
            self.start()
            while not self._stop.wait(self.poll_interval_s):
                self.poll()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (signal-safe, thread-safe)."""
        self._stop.set()

    def stop(self) -> None:
        """SIGTERM every child's process group, wait ``grace_s``, SIGKILL the rest; reap all.

        Idempotent. Removes the state file.
        """
        self._stop.set()
        if self._stopped:
            return
        self._stopped = True
        live = [(p, p.popen) for p in self.procs.values() if p.running and p.popen is not None]
        for p, popen in live:
            p.next_start_at = None
            _signal_group(popen, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for p, popen in live:
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %s) ignored SIGTERM for %.1f s: SIGKILL", p.spec.name,
                            popen.pid, self.grace_s)
                _signal_group(popen, signal.SIGKILL)
                popen.wait()
        for p in self.procs.values():
            p.next_start_at = None
            if p.popen is not None and p.popen.returncode is not None:
                p.last_exit_code = p.popen.returncode
            self._close_log(p)
        if self.state_path:
            self.state_path.unlink(missing_ok=True)

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        """The state document: supervisor pid, start time (ms) and each process's ``as_dict``."""
        return {"supervisor_pid": os.getpid(), "started_at_ms": self.started_at_ms,
                **self.extra_state,
                "processes": {n: p.as_dict() for n, p in self.procs.items()}}

    def write_state(self) -> None:
        if self.state_path and not self._stopped:
            _write_json(self.state_path, self.state())

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self, p: ProcessState) -> None:
        p.next_start_at = None
        self._close_log(p)
        out = None
        if self.log_dir:
            # Kept open for the child's lifetime; closed on restart and stop.
            p.log_file = open(self.log_dir / f"{p.spec.name}.log", "ab", buffering=0)  # noqa: SIM115
            p.log_offset = p.log_file.tell()
            out = p.log_file
        try:
            p.popen = subprocess.Popen(
                list(p.spec.argv), env=child_env(p.spec.name, {**self.base_env, **p.spec.env}),
                cwd=p.spec.cwd,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if out else None,
                start_new_session=True)  # own group: terminal signals go to the supervisor only
        except OSError as e:  # e.g. the interpreter vanished: treat as an exit, retry later
            p.popen = None
            p.last_error = f"cannot start {p.spec.argv[0]}: {e}"
            log.error("%s: %s", p.spec.name, p.last_error)
            self._schedule_restart(p, self.clock())
            return
        p.exit_seen = False
        p.started_at = self.clock()
        p.started_at_ms = int(time.time() * 1000)
        p.last_error = None
        log.info("started %s pid %s port %s", p.spec.name, p.popen.pid, p.spec.port)

    def _exited(self, p: ProcessState, popen: subprocess.Popen[bytes], now: float) -> None:
        p.last_exit_code = popen.returncode
        p.last_output = self._last_output(p)
        if p.started_at is not None and now - p.started_at >= self.stable_after_s:
            p.backoff_s = 0.0  # it ran long enough: this is a fresh failure, not a crash loop
        self._schedule_restart(p, now)
        detail = p.last_output or ("(no output)" if self.log_dir else "(its output is above)")
        log.warning("%s exited with %s: %s; restart %d in %.1f s (pid %s)", p.spec.name,
                    p.last_exit_code, detail, p.restarts + 1, p.backoff_s, popen.pid)

    def _last_output(self, p: ProcessState, max_chars: int = 300) -> str | None:
        """The last non-empty line this popen wrote to its log (``None``: no log, or nothing
        written), at most ``max_chars`` characters."""
        if self.log_dir is None:
            return None
        path = self.log_dir / f"{p.spec.name}.log"
        try:
            with open(path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                start = max(p.log_offset, size - 64 * 1024)   # the tail is enough
                fh.seek(start)
                tail = fh.read().decode(errors="replace")
        except OSError:
            return None
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        if not lines:
            return None
        last = lines[-1]
        return last if len(last) <= max_chars else last[:max_chars - 3] + "..."

    def _schedule_restart(self, p: ProcessState, now: float) -> None:
        p.backoff_s = (self.backoff_initial_s if p.backoff_s <= 0
                       else min(p.backoff_s * 2, self.backoff_max_s))
        p.next_start_at = now + p.backoff_s

    @staticmethod
    def _close_log(p: ProcessState) -> None:
        if p.log_file is not None:
            p.log_file.close()
            p.log_file = None


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    # The child leads its own group (start_new_session): signal the group so that its own
    # children (e.g. server workers) stop too.
    try:
        os.killpg(popen.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        popen.send_signal(sig)
