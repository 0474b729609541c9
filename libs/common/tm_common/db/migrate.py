"""Run the Alembic migrations programmatically: ``migrate(url)`` upgrades a database to head.

Alembic's ``env.py`` drives an async engine with ``asyncio.run``, which cannot run inside an event
loop; :func:`migrate` therefore always runs Alembic in a worker thread, so it is callable from a
script and (through :func:`migrate_async`) from inside an async service. Concurrent migrators are
serialised: a PostgreSQL advisory lock in ``env.py``, a file lock beside a SQLite file here, and
a lock per process (Alembic's state is global).
"""

from __future__ import annotations

import asyncio
import fcntl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from tm_common.db.engine import async_url, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Alembic keeps its running environment in module globals (alembic.context, alembic.op): two
# migrations in one process at once would run on each other's connections. One at a time here;
# across processes the PostgreSQL advisory lock / SQLite file lock serialise them.
_PROCESS_LOCK = threading.Lock()


def alembic_config(url: str) -> Config:
    """An Alembic :class:`Config` for ``url`` with this package's migrations (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: configparser would choke on '%' in passwords.
    cfg.attributes["url"] = async_url(url).render_as_string(hide_password=False)
    return cfg


def head_revision() -> str:
    """The newest revision id in ``migrations/versions``."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


@contextmanager
def _sqlite_lock(url: str) -> Iterator[None]:
    path = sqlite_path(async_url(url))
    if path is None:
        yield
        return
    lock_path = path.expanduser().resolve().with_name(path.name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        yield


def _in_thread(fn: Callable[..., object], *args: object) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)

    t = threading.Thread(target=target, name="tm-migrate", daemon=True)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: head). Idempotent.

    Blocks until done; safe to call from any thread, including one running an event loop (it
    blocks that loop: prefer :func:`migrate_async` there). Raises the underlying SQLAlchemy /
    Alembic error if the database is unreachable or a migration fails.
    """
    cfg = alembic_config(url)
    with _PROCESS_LOCK, _sqlite_lock(url):
        _in_thread(command.upgrade, cfg, revision)


async def migrate_async(url: str, revision: str = "head") -> None:
    """:func:`migrate` without blocking the running event loop."""
    await asyncio.to_thread(migrate, url, revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade ``url`` to ``revision`` (default: drop everything). For tests and rollbacks."""
    cfg = alembic_config(url)
    with _PROCESS_LOCK, _sqlite_lock(url):
        _in_thread(command.downgrade, cfg, revision)
