"""Async engines and sessions for PostgreSQL (asyncpg) and SQLite (aiosqlite), from one URL.

With no ``TM_DATABASE_URL`` the project uses one SQLite file under ``data_dir`` that several local
processes share; WAL mode lets readers run beside the single writer and a busy timeout makes a
writer wait for the lock instead of failing with ``database is locked``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tm_common.db.tls import tls_connect_args, warn_if_unverified
from tm_common.db.types import json_dumps
from tm_common.errors import ConfigError
from tm_common.settings import CommonSettings

SQLITE_FILE_NAME = "trade_matrix.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000

_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def resolve_database_url(settings: CommonSettings) -> str:
    """``settings.database_url``, or ``sqlite+aiosqlite:///<data_dir>/trade_matrix.db``.

    The default creates ``data_dir`` (absolute path in the URL, so every process that shares the
    settings opens the same file whatever its working directory).
    """
    if settings.database_url:
        return settings.database_url
    data_dir = Path(settings.data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{data_dir / SQLITE_FILE_NAME}"


def async_url(url: str | URL) -> URL:
    """Normalise a URL to its async driver (``postgresql://`` → ``postgresql+asyncpg://``;
    libpq's ``?sslmode=`` → asyncpg's ``?ssl=``).

    Raises :class:`ConfigError` for a malformed URL or a database other than PostgreSQL/SQLite.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as e:
        # The value is not echoed: it may hold a password that the log redactor cannot find in
        # a string that does not parse as a URL.
        raise ConfigError("TM_DATABASE_URL is not a database URL (expected postgresql+asyncpg://"
                          "user:password@host:port/db or sqlite+aiosqlite:///path)") from e
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(f"unsupported database {backend!r}: use postgresql+asyncpg:// "
                          "or sqlite+aiosqlite://")
    if parsed.drivername != _ASYNC_DRIVERS[backend]:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    if backend == "postgresql" and "sslmode" in parsed.query and "ssl" not in parsed.query:
        # libpq's ``sslmode`` (disable ... verify-full) is asyncpg's ``ssl`` argument, same values.
        parsed = parsed.update_query_dict({"ssl": parsed.query["sslmode"]}) \
            .difference_update_query(["sslmode"])
    return parsed


def sqlite_path(url: URL) -> Path | None:
    """The SQLite file of ``url``; ``None`` for in-memory SQLite and for other databases."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def _on_sqlite_connect(dbapi_conn: Any, _record: Any, busy_timeout_ms: int) -> None:
    cur = dbapi_conn.cursor()
    try:
        # WAL is a property of the file (persists); setting it on every connection is cheap.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        # NORMAL is durable in WAL mode except for the last commits on power loss (not a crash).
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def make_engine(url: str | URL, *, echo: bool = False,
                sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any) -> AsyncEngine:
    """An :class:`AsyncEngine` for ``url`` (PostgreSQL via asyncpg, SQLite via aiosqlite).

    ``postgresql://`` and ``sqlite://`` are upgraded to their async drivers. SQLite: the parent
    folder of the file is created, and every connection gets WAL mode and a busy timeout of
    ``sqlite_busy_timeout_ms`` (default 30 000 ms). PostgreSQL: ``pool_pre_ping`` so that a
    restarted server costs one reconnect, not an error; libpq's ``sslrootcert``/``sslcert``/
    ``sslkey`` URL options become the TLS context (:mod:`tm_common.db.tls`), and a non-local
    server reached without ``sslmode=verify-full``/``verify-ca`` is warned about once
    (``db.tls_unverified``). JSON columns serialise ``Decimal`` as
    strings. ``kwargs`` go to :func:`create_async_engine`.
    """
    parsed = async_url(url)
    kwargs.setdefault("json_serializer", json_dumps)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is not None:
            path.expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", sqlite_busy_timeout_ms / 1000)
        engine = create_async_engine(parsed, echo=echo, connect_args=connect_args, **kwargs)
        sa.event.listen(engine.sync_engine, "connect",
                        lambda c, r: _on_sqlite_connect(c, r, sqlite_busy_timeout_ms))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    warn_if_unverified(parsed)
    parsed, tls_args = tls_connect_args(parsed)
    if tls_args:
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), **tls_args}
    return create_async_engine(parsed, echo=echo, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; objects stay readable after commit (``expire_on_commit=False``)."""
    return async_sessionmaker(engine, expire_on_commit=False)
