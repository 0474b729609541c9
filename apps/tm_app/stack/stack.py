"""What ``tm`` does around the supervisor: settings, pre-flight checks, state file, stopping.

Files under ``data_dir``: ``supervisor.json`` (the running supervisor's state, see
:meth:`tm_app.stack.supervisor.Supervisor.state`; ``tm up`` adds ``port_offset`` and
``admin_token_file``), ``supervisor.lock`` (held with ``flock`` by the running supervisor, so a
second ``tm up`` refuses and ``tm down`` knows one is alive), ``admin-token`` (mode 0600: the
admin token ``tm up`` generates when ``TM_ADMIN_TOKEN`` is unset; ``tm breaker``/``tm kill`` read
it) and ``mesh/mesh.json``, ``mesh/mesh-ingest.json`` (a running ``tm demo``'s supervisors, whose
``supervisor_pid`` is the ``tm demo`` process: ``tm down`` stops it too).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, TextIO, TypeGuard

import psutil
from pydantic import Field
from tm_common.settings import CommonSettings, settings_error

STATE_FILE = "supervisor.json"
LOCK_FILE = "supervisor.lock"
#: A running ``tm demo``'s state files, relative to ``data_dir`` (its mesh runs in ``mesh/``).
DEMO_STATE_FILES = ("mesh/mesh.json", "mesh/mesh-ingest.json")
#: Where ``tm`` commands keep an embedded Redis, relative to ``data_dir`` (``tm paper``: its own).
EMBEDDED_REDIS_DIRS = (".", "paper")


class StackError(Exception):
    """An expected failure with a one-line message for the user."""


class StackSettings(CommonSettings):
    """What ``tm`` reads: the common settings plus the service table override."""

    services_file: Path | None = Field(default=None, description="JSON list of {name, module, "
                                       "port} replacing the built-in service table")


def load_settings() -> StackSettings:
    """``StackSettings`` from ``TM_*``; a bad value becomes a :class:`StackError` naming it."""
    from pydantic import ValidationError

    try:
        return StackSettings()
    except ValidationError as e:
        raise StackError(f"bad configuration: {settings_error(StackSettings, e)}") from None


def data_dir(settings: CommonSettings) -> Path:
    d = Path(settings.data_dir).expanduser().resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


def state_path(settings: CommonSettings) -> Path:
    return data_dir(settings) / STATE_FILE


def read_state(settings: CommonSettings) -> dict[str, Any] | None:
    """The supervisor's state document, or ``None`` if there is none (or it is unreadable)."""
    return read_state_file(state_path(settings))


def read_state_file(path: Path) -> dict[str, Any] | None:
    """A supervisor state document (``None``: missing, unreadable or not one)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "processes" in doc else None


def last_line(path: Path) -> str:
    """The last non-empty line of a log file ('' if none), for one-line error messages."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


class SupervisorLock:
    """The exclusive ``flock`` a running supervisor holds on ``<data_dir>/supervisor.lock``."""

    def __init__(self, settings: CommonSettings) -> None:
        self.path = data_dir(settings) / LOCK_FILE
        self._fh: TextIO | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; ``False`` if another process holds it."""
        fh = open(self.path, "a+")  # noqa: SIM115 - held open while the lock is held
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def is_held_elsewhere(self) -> bool:
        if self.acquire():
            self.release()
            return False
        return True

    def holder_pid(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``: in the netloc and in any query parameter
    named like a secret (``?password=``, ``?sslpassword=``, ``?token=``)."""
    from tm_common.logging import redact_url

    return redact_url(url)


def service_table(settings: StackSettings) -> tuple:
    """The built-in :data:`~tm_app.stack.services.SERVICES`, or ``TM_SERVICES_FILE``'s."""
    from tm_app.stack.services import SERVICES, load_table

    if settings.services_file is None:
        return SERVICES
    try:
        return load_table(settings.services_file)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise StackError(f"invalid TM_SERVICES_FILE {settings.services_file}: {e}") from None


def _reason(e: BaseException) -> str:
    e = getattr(e, "orig", None) or e
    text = str(e).strip().splitlines()
    name = type(e).__name__
    if not text:
        return name
    return text[0] if name in ("Error", "Exception") else f"{name}: {text[0]}"


def redis_url(settings: CommonSettings) -> str:
    """The configured Redis (checked with PING) or the shared embedded one (started if needed)."""
    from tm_common.embedded import ensure_embedded_redis, ping
    from tm_common.errors import TradeMatrixError

    try:
        url = ensure_embedded_redis(settings)
    except (TradeMatrixError, OSError) as e:
        raise StackError(f"cannot start the embedded Redis: {_reason(e)}") from None
    if not ping(url, timeout_s=2.0):
        raise StackError(f"cannot reach Redis at {redact(url)} (TM_REDIS_URL)")
    return url


async def _check_database(url: str, timeout_s: float) -> None:
    import sqlalchemy as sa
    from tm_common.db.engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(sa.text("SELECT 1")), timeout_s)
    finally:
        await engine.dispose()


def database_url(settings: CommonSettings, timeout_s: float = 10.0) -> str:
    """The resolved database URL, after checking that it answers ``SELECT 1``."""
    from tm_common.db.engine import resolve_database_url
    from tm_common.errors import ConfigError

    try:
        url = resolve_database_url(settings)
        asyncio.run(asyncio.wait_for(_check_database(url, timeout_s), timeout_s))
    except ConfigError as e:
        raise StackError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - driver errors vary (asyncpg, sqlite3, OSError)
        raise StackError(f"cannot reach database at {redact(resolve_database_url(settings))}: "
                         f"{_reason(e)}") from None
    return url


def migrate_database(settings: CommonSettings, url: str | None = None) -> tuple[str, str]:
    """Upgrade the database (``url``, default: resolved and checked) to head.

    Returns (redacted URL, head revision)."""
    from tm_common.db.migrate import head_revision, migrate

    url = url or database_url(settings)
    try:
        migrate(url)
    except Exception as e:  # noqa: BLE001 - report the migration failure in one line
        raise StackError(f"migrating {redact(url)} failed: {_reason(e)}") from None
    return redact(url), head_revision()


def prepare_env(settings: CommonSettings, *, migrate_db: bool = True) -> dict[str, str]:
    """The environment every service gets: ours plus resolved ``TM_REDIS_URL``,
    ``TM_DATABASE_URL``, an absolute ``TM_DATA_DIR`` (so all processes share one stack), the
    stack's signing keys (``<data_dir>/signing-keys.json``, :mod:`tm_common.bus.signing`) for
    every holder whose variable is not already set and, when ``TM_ADMIN_TOKEN`` is unset, the
    stack's generated per-service tokens (:func:`ensure_admin_token`, :func:`token_env`: each
    variable is read by one service only, so each gets its own)."""
    from tm_common.bus.signing import local_keys, signing_env

    from tm_app.stack.admin_token import ensure_admin_token, token_env

    env = dict(os.environ)
    if settings.admin_token is None:        # each service its own token (admin_token.py)
        for name, token in token_env(ensure_admin_token(settings)).items():
            env.setdefault(name, token)
    env["TM_REDIS_URL"] = redis_url(settings)
    env["TM_DATABASE_URL"] = database_url(settings)
    if migrate_db:
        migrate_database(settings, env["TM_DATABASE_URL"])
    env["TM_DATA_DIR"] = str(data_dir(settings))
    for name, key in signing_env(local_keys(data_dir(settings))).items():
        env.setdefault(name, key)
    return env


def _alive(pid: int | None) -> TypeGuard[int]:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _same_process(pid: int, argv: list[str]) -> bool:
    # Guards against pid reuse: only signal a process still running the recorded command.
    try:
        return psutil.Process(pid).cmdline() == argv
    except psutil.Error:
        return False


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in pids if _alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def stop_supervisor(settings: CommonSettings, timeout_s: float = 30.0) -> int | None:
    """Stop the running supervisor (SIGTERM; it stops its services) and clean up leftovers.

    If the supervisor is gone or does not stop within ``timeout_s`` seconds, the recorded
    service processes still running are sent SIGTERM, then SIGKILL after 5 s. Returns the
    number of services that were recorded, or ``None`` if nothing was running.
    """
    state = read_state(settings)
    lock = SupervisorLock(settings)
    if state is None and not lock.is_held_elsewhere():
        return None
    sup_pid = (state or {}).get("supervisor_pid") or lock.holder_pid()
    if lock.is_held_elsewhere() and _alive(sup_pid):
        _stop_pid(sup_pid, timeout_s)
    procs = (state or {}).get("processes", {})
    _stop_leftovers(procs)
    state_path(settings).unlink(missing_ok=True)
    return len(procs)


def stop_demo(settings: CommonSettings, timeout_s: float = 30.0) -> tuple[int, int] | None:
    """Stop a running ``tm demo`` (its :data:`DEMO_STATE_FILES`): SIGTERM to the ``tm demo``
    process (it stops its services and exits), then the recorded services still running.
    Returns (demo pid, number of services recorded), or ``None`` if none was running."""
    docs = [(path, read_state_file(path))
            for path in (data_dir(settings) / f for f in DEMO_STATE_FILES)]
    found = [(path, doc) for path, doc in docs if doc is not None]
    if not found:
        return None
    pid = int(found[0][1].get("supervisor_pid") or 0)
    if _recorded_alive(pid, found[0][1].get("started_at_ms")):
        _stop_pid(pid, timeout_s)
    procs = {n: p for _, doc in found for n, p in doc.get("processes", {}).items()}
    _stop_leftovers(procs)
    for path, _ in found:
        path.unlink(missing_ok=True)
    return pid, len(procs)


def _recorded_alive(pid: int, started_at_ms: Any) -> bool:
    """``pid`` runs and is the process that wrote a state at ``started_at_ms`` (it existed by
    then: a pid reused later is not signalled), and is not this process."""
    if not _alive(pid) or pid == os.getpid():
        return False
    try:
        created_ms = psutil.Process(pid).create_time() * 1000
    except psutil.Error:
        return False
    return not isinstance(started_at_ms, (int, float)) or created_ms <= started_at_ms + 2000


def _stop_pid(pid: int, timeout_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _wait_gone([pid], timeout_s):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        _wait_gone([pid], 5.0)


def _stop_leftovers(procs: dict[str, Any]) -> None:
    """SIGTERM, then SIGKILL, the process groups of recorded services still running their
    recorded command."""
    leftovers = [p["pid"] for p in procs.values()
                 if p.get("pid") and _alive(p["pid"]) and _same_process(p["pid"], p.get("argv"))]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in leftovers:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        leftovers = _wait_gone(leftovers, 5.0)
        if not leftovers:
            break


def embedded_redis_running(settings: CommonSettings) -> list[Path]:
    """The :data:`EMBEDDED_REDIS_DIRS` whose recorded embedded Redis runs now."""
    from tm_common.embedded import read_record

    out = []
    for sub in EMBEDDED_REDIS_DIRS:
        d = (data_dir(settings) / sub).resolve()
        record = read_record(settings.model_copy(update={"data_dir": d})) if d.is_dir() else None
        if record and _alive(int(record["pid"])):
            out.append(d)
    return out


def stop_embedded_redis_all(settings: CommonSettings) -> list[Path]:
    """Stop the embedded Redis of every :data:`EMBEDDED_REDIS_DIRS`; the folders where one ran."""
    from tm_common.embedded import stop_embedded_redis

    stopped = []
    for sub in EMBEDDED_REDIS_DIRS:
        d = (data_dir(settings) / sub).resolve()
        if d.is_dir() and stop_embedded_redis(settings.model_copy(update={"data_dir": d})):
            stopped.append(d)
    return stopped
