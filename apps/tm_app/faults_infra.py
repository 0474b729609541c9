"""Private servers for the fault drills: a Redis 7 with AOF and a PostgreSQL 15 cluster, each in
its own temp folder on its own port, so that a drill may stop and restart them without touching
the shared servers other engineers and CI use.

- :class:`PrivateRedis`: ``redis-server --appendonly yes --appendfsync always --dir <dir>``;
  :meth:`PrivateRedis.restart` stops it (``SHUTDOWN`` or SIGKILL), stays down a while and starts
  it again on the same folder, so everything acknowledged before the stop is still there.
- :class:`PrivatePostgres`: ``initdb`` into a temp folder (as the ``postgres`` user when run as
  root, which ``initdb`` refuses), ``pg_ctl start/stop``; one database per run, created from a
  template that holds the migrated schema and the model registry.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("TM_PG_BIN", "/usr/lib/postgresql/15/bin"))


class InfraError(RuntimeError):
    """A private server could not be started or stopped; the message says which and why."""


def _wait(pred, timeout_s: float, what: str) -> float:
    """Poll ``pred`` until true; returns the seconds waited. Raises :class:`InfraError`."""
    t0 = time.monotonic()
    last = ""
    while True:
        try:
            if pred():
                return time.monotonic() - t0
        except InfraError:
            raise
        except Exception as e:  # noqa: BLE001 - not up yet
            last = f" (last: {type(e).__name__}: {e})"
        if time.monotonic() - t0 > timeout_s:
            raise InfraError(f"{what} not reached after {timeout_s:.0f}s{last}")
        time.sleep(0.05)


@dataclass
class Outage:
    """One stop/start of a private server: when (monotonic s), how long it was unreachable."""

    kind: str                   # "SHUTDOWN", "SIGKILL", "pg_ctl stop -m fast", ...
    at_s: float
    down_s: float = 0.0
    note: str = ""


@dataclass
class PrivateRedis:
    """A ``redis-server`` (from PATH) with AOF ``appendfsync always`` in ``workdir``."""

    workdir: Path
    port: int
    proc: subprocess.Popen | None = None
    outages: list[Outage] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1,
                           socket_timeout=5)

    def start(self, timeout_s: float = 30.0) -> None:
        if shutil.which("redis-server") is None:
            raise InfraError("redis-server is not on PATH (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

        def loaded() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise InfraError(f"redis-server exited: see {self.workdir / 'redis.log'}")
            return self._client().info("persistence").get("loading") == 0
        _wait(loaded, timeout_s, f"redis-server on port {self.port}")

    def stop(self, how: str = "SHUTDOWN") -> None:
        """``SHUTDOWN`` (clean: the AOF is flushed) or ``SIGKILL`` (nothing flushed beyond
        what ``appendfsync always`` already synced before each reply)."""
        if self.proc is None:
            return
        if how == "SIGKILL":
            self.proc.send_signal(signal.SIGKILL)
        else:
            # A raw SHUTDOWN: redis-py's client retries (seconds) when the server hangs up.
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"SHUTDOWN\r\n")
                try:
                    s.recv(64)
                except OSError:
                    pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self, how: str = "SHUTDOWN", down_s: float = 2.0) -> Outage:
        """Stop, stay down ``down_s`` seconds, start again on the same folder."""
        t0 = time.monotonic()
        self.stop(how)
        time.sleep(down_s)
        self.start()
        out = Outage(how, t0, time.monotonic() - t0)
        self.outages.append(out)
        return out

    def close(self) -> None:
        if self.proc is not None:
            self.stop("SIGKILL")


def _as_postgres(argv: list[str]) -> list[str]:
    """``initdb`` and ``pg_ctl`` refuse to run as root: run them as ``postgres`` then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class PrivatePostgres:
    """A throwaway PostgreSQL cluster on ``port`` (trust auth, user postgres), in its own temp
    folder (when run as root the cluster belongs to ``postgres``, which must be able to reach
    it: a pytest temp dir is private to root, so the folder is made under the system temp)."""

    port: int
    workdir: Path | None = None

    @property
    def data(self) -> Path:
        assert self.workdir is not None, "init() first"
        return self.workdir / "pgdata"

    def url(self, db: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, argv: list[str], what: str, timeout_s: float = 120) -> str:
        p = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout_s)
        if p.returncode != 0:
            raise InfraError(f"{what} failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-300:]}")
        return p.stdout

    def init(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise InfraError(f"no initdb in {PG_BIN} (set TM_PG_BIN)")
        if shutil.which("psql") is None:
            raise InfraError("psql is not on PATH (apt-get install postgresql-client)")
        self.workdir = Path(tempfile.mkdtemp(prefix="tm-faults-pg-"))
        if os.geteuid() == 0:
            self.workdir.chmod(0o755)
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                "-A", "trust", "--no-sync"]), "initdb")

    def start(self, timeout_s: float = 60) -> None:
        assert self.workdir is not None, "init() first"
        opts = (f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts,
                                "-l", str(self.workdir / "pg.log"), "-w", "-t", str(int(timeout_s)),
                                "start"]), "pg_ctl start", timeout_s + 10)

    def stop(self, mode: str = "fast") -> None:
        self._run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                                "stop"]), "pg_ctl stop")

    def running(self) -> bool:
        p = subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]),
                           check=False, capture_output=True, timeout=30)
        return p.returncode == 0

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self._run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                          "-d", db, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], f"psql {sql[:60]!r}")

    def create_db(self, name: str, template: str | None = None) -> str:
        """A fresh database (a copy of ``template`` when given); returns its URL."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def close(self) -> None:
        """Stop the cluster and delete its folder."""
        if self.workdir is None:
            return
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None
