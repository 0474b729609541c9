"""The revisions under ``versions/`` are the SQL they run: this fills and executes that SQL.

A revision holds its DDL as SQL text, written once for both supported dialects, and never imports
:mod:`tm_common.db.tables` or :mod:`tm_common.db.types`: whatever the application code becomes, it
keeps creating the DDL it created when it was written (``tests/integration/db`` checks that head
agrees with ``tables.py``). The few spellings that differ between PostgreSQL and SQLite are named
placeholders, filled from :data:`SPELLINGS`:

- ``{decimal}``: an exact decimal (``tm_common.db.types.ExactDecimal``): ``NUMERIC`` on
  PostgreSQL, the decimal's string in ``VARCHAR(64)`` on SQLite;
- ``{json}``: ``JSONB`` on PostgreSQL, ``JSON`` on SQLite;
- ``{false}``: the boolean false of a ``DEFAULT``: ``false`` on PostgreSQL, ``0`` on SQLite;
- ``{bytes}``: ``BYTEA`` on PostgreSQL, ``BLOB`` on SQLite;
- ``{bigserial}``: what 0001 created for ``portfolio_snapshots.bar_time_ms``, a lone integer key
  that SQLAlchemy rendered with its autoincrement default: ``BIGSERIAL`` (a ``BIGINT`` with a
  sequence default) on PostgreSQL, ``BIGINT`` on SQLite.

These spellings are frozen like the revisions that use them: change none of them; a revision that
needs another spelling adds a placeholder. Statements are separated by ``;`` (none may contain
one) and, as they run through ``sqlalchemy.text``, must not contain a ``:name`` bind marker.
"""

from __future__ import annotations

from alembic import op

SPELLINGS: dict[str, dict[str, str]] = {
    "postgresql": {"decimal": "NUMERIC", "json": "JSONB", "false": "false", "bytes": "BYTEA",
                   "bigserial": "BIGSERIAL"},
    "sqlite": {"decimal": "VARCHAR(64)", "json": "JSON", "false": "0", "bytes": "BLOB",
               "bigserial": "BIGINT"},
}


def statements(sql: str, dialect: str) -> list[str]:
    """The statements of ``sql``, its placeholders filled for ``dialect`` (``postgresql``,
    ``sqlite``). Raises ``KeyError`` for an unknown placeholder, ``ValueError`` for a dialect
    without spellings."""
    if dialect not in SPELLINGS:
        raise ValueError(f"no DDL spellings for dialect {dialect!r}; supported: {sorted(SPELLINGS)}")
    filled = sql.format_map(SPELLINGS[dialect])
    return [s.strip() for s in filled.split(";") if s.strip()]


def run(sql: str, *, only: str | None = None) -> None:
    """Execute ``sql`` in the running migration, statement by statement, for its dialect.

    The dialect comes from the migration context, not a connection, so that offline mode
    (``alembic upgrade --sql``) prints the same statements that online mode executes. ``only``:
    the one dialect the SQL is for (a revision that mends what one engine alone was given); on
    the other it runs nothing.
    """
    dialect = op.get_context().dialect.name
    if only is not None and dialect != only:
        return
    for statement in statements(sql, dialect):
        op.execute(statement)
