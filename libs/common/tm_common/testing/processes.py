"""A service as a real child process for tests: ``python -m <module>`` (or any argv) on a free
port with a given environment, logs to a file, polled over HTTP, stopped with SIGTERM.

Services are started by module name only: nothing here imports a service.
"""

from __future__ import annotations

import os
import signal as signals
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tm_common.embedded import _pid_alive  # the embedded Redis's own liveness test
from tm_common.testing.redis import free_port
from tm_common.testing.wait import wait_for

T = TypeVar("T")


def stop_process(proc: subprocess.Popen[Any], grace_s: float, sig: int = signals.SIGTERM,
                 kill_wait_s: float | None = None) -> int | None:
    """Send ``sig`` if ``proc`` still runs; SIGKILL it after ``grace_s`` seconds, then wait
    ``kill_wait_s`` seconds for it (None = as long as it takes). Its return code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=kill_wait_s)
    return proc.returncode


def clean_env(drop_prefixes: tuple[str, ...] = ("TM_",)) -> dict[str, str]:
    """This process's environment without the variables starting with ``drop_prefixes`` (by
    default the test run's own ``TM_*`` settings, which must not leak into a service)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}


class ServiceProcess:
    """``argv`` (a module name means ``python -m <module>``) as a child process.

    Environment: :func:`clean_env` (``drop_prefixes``), then ``PYTHONUNBUFFERED=1`` and
    ``TM_HTTP_PORT``, then ``env``; a ``None`` value in ``env`` removes the variable. The port is
    ``port``, else ``env["TM_HTTP_PORT"]``, else a free one. stdout+stderr are appended to
    ``log_path``. HTTP calls time out after ``http_timeout_s`` seconds; :meth:`stop` waits
    ``stop_timeout_s`` seconds before SIGKILL.
    """

    def __init__(self, argv: str | Sequence[str], env: dict[str, str | None], log_path: Path, *,
                 port: int | None = None, cwd: Path | None = None,
                 drop_prefixes: tuple[str, ...] = ("TM_",), http_timeout_s: float = 5.0,
                 stop_timeout_s: float = 20.0) -> None:
        self.argv = [sys.executable, "-m", argv] if isinstance(argv, str) else list(argv)
        self.module = argv if isinstance(argv, str) else " ".join(self.argv)
        self.port = int(port or env.get("TM_HTTP_PORT") or free_port())
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.http_timeout_s, self.stop_timeout_s = http_timeout_s, stop_timeout_s
        merged = {**clean_env(drop_prefixes), "PYTHONUNBUFFERED": "1",
                  "TM_HTTP_PORT": str(self.port), **env}
        self.env: dict[str, str] = {k: v for k, v in merged.items() if v is not None}
        self.proc: subprocess.Popen[bytes] | None = None

    # -- life cycle --------------------------------------------------------------------------
    def start(self, *, healthy_within_s: float | None = None,
              ready_within_s: float | None = None) -> ServiceProcess:
        """Spawn it; then, if given, wait (seconds) for ``/healthz`` and ``/readyz`` to be 200."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT,
                                         cwd=None if self.cwd is None else str(self.cwd))
        if healthy_within_s is not None:
            self.wait_http("/healthz", timeout_s=healthy_within_s)
        if ready_within_s is not None:
            self.wait_http("/readyz", timeout_s=ready_within_s)
        return self

    def alive(self) -> bool:
        """True while it runs; an ``AssertionError`` with the log's tail once it has exited."""
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"{self.module} exited ({self.proc and self.proc.returncode}):\n"
                                 + self.logs()[-3000:])
        return True

    def wait_for(self, pred: Callable[[], T], timeout_s: float = 60, what: str = "condition") -> T:
        """:func:`~tm_common.testing.wait.wait_for` ``pred`` while the process runs: fails at once
        if it exits, and with the tail of its log on timeout."""
        def alive_and() -> T:
            self.alive()
            return pred()
        try:
            return wait_for(alive_and, timeout_s, f"{self.module}: {what}")
        except AssertionError as e:
            if self.proc is not None and self.proc.poll() is None:   # timed out, still running
                raise AssertionError(f"{e}\n{self.logs()[-3000:]}") from None
            raise

    def wait_http(self, path: str = "/healthz", status: int = 200, timeout_s: float = 60) -> None:
        """Wait until ``GET path`` answers ``status`` (see :meth:`wait_for`)."""
        self.wait_for(lambda: self.get(path).status_code == status, timeout_s,
                      f"{path} → {status}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout_s: float = 60) -> int:
        """Wait for it to exit; its return code."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    wait = wait_exit

    def kill9(self) -> None:
        self.signal(signals.SIGKILL)
        self.wait_exit(10)

    def stop(self, sig: int = signals.SIGTERM) -> int | None:
        """Send ``sig`` if it still runs, SIGKILL after ``stop_timeout_s``; its return code."""
        return None if self.proc is None else stop_process(self.proc, self.stop_timeout_s, sig)

    # -- HTTP and logs -----------------------------------------------------------------------
    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=self.http_timeout_s)

    def post(self, path: str, token: str | None = None, header: str | None = None,
             **kw: Any) -> httpx.Response:
        """POST with ``Authorization: Bearer <token>`` or the raw ``header`` value, if given."""
        headers = dict(kw.pop("headers", {}))
        if header is not None:
            headers["Authorization"] = header
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.base + path, headers=headers, timeout=self.http_timeout_s, **kw)

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.get("/status").json()
        return doc

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ProcessGroup(list[ServiceProcess]):
    """The processes a fixture made; :func:`stopped_after` stops them all."""

    def add(self, p: ServiceProcess, *, start: bool = True, healthy_within_s: float | None = None,
            ready_within_s: float | None = None) -> ServiceProcess:
        """Keep ``p``; start it (see :meth:`ServiceProcess.start`) unless ``start`` is false."""
        self.append(p)
        if start:
            p.start(healthy_within_s=healthy_within_s, ready_within_s=ready_within_s)
        return p


@contextmanager
def stopped_after(sig: int = signals.SIGTERM) -> Iterator[ProcessGroup]:
    """A :class:`ProcessGroup`; each of its processes is stopped (``sig``) on exit. For fixtures:
    ``with stopped_after() as group: yield factory`` (the factory calls ``group.add``)."""
    group = ProcessGroup()
    try:
        yield group
    finally:
        for p in group:
            p.stop(sig)


def pid_alive(pid: int | None) -> bool:
    """Running and not a zombie (a zombie has exited; only its entry is left)."""
    return pid is not None and pid > 0 and _pid_alive(pid)
