"""Database access: async engines for PostgreSQL/SQLite, the tables, idempotent upserts.

- :mod:`tm_common.db.engine`: ``make_engine(url)``, ``session_factory(engine)``,
  ``resolve_database_url(settings)``.
- :mod:`tm_common.db.tables`: every table on one ``metadata``.
- :mod:`tm_common.db.upsert`: ``upsert(session_or_conn, table, rows, key_cols)``,
  ``mark_processed(...)``.
- :mod:`tm_common.db.writer`: :class:`WriteBehindWriter` (rows queued by a handler, written in
  order behind the stream with retries; each service's repository names its table).
- :mod:`tm_common.db.migrate`: ``migrate(url)`` / ``migrate_async(url)`` (Alembic, to head).
- :mod:`tm_common.db.tls`: libpq's certificate options in the URL, and the start-up warning for an
  unverified remote server.
"""

from tm_common.db.engine import make_engine, resolve_database_url, session_factory
from tm_common.db.upsert import mark_processed, upsert, upsert_sync
from tm_common.db.writer import WriteBehindWriter

__all__ = ["WriteBehindWriter", "make_engine", "mark_processed", "resolve_database_url",
           "session_factory", "upsert", "upsert_sync"]
