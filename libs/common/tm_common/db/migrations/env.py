"""Alembic environment: async engines (asyncpg, aiosqlite), batch mode on SQLite.

The URL comes from ``config.attributes["url"]`` (set by :func:`tm_common.db.migrate.migrate`) or
the ``sqlalchemy.url`` option. A caller may also pass an open sync connection in
``config.attributes["connection"]``.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.pool import NullPool

from tm_common.db.engine import async_url, make_engine
from tm_common.db.tables import metadata

config = context.config
target_metadata = metadata

# Arbitrary constant: the PostgreSQL advisory lock that serialises concurrent migrators.
_PG_MIGRATION_LOCK = 7_305_114_020


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set config.attributes['url'] or sqlalchemy.url")
    return str(url)


def run_migrations_offline() -> None:
    url = async_url(_url())
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.get_backend_name() == "sqlite",
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: sa.Connection) -> None:
    is_pg = connection.dialect.name == "postgresql"
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        if is_pg:
            # Services may start together and each migrate: the second waits, then finds head.
            # Transaction-scoped, so it is released at commit; PostgreSQL DDL is transactional.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                               {"k": _PG_MIGRATION_LOCK})
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = make_engine(_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
