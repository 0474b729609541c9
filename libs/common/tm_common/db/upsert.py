"""Idempotent writes on PostgreSQL and SQLite: ``INSERT ... ON CONFLICT (key) DO UPDATE``.

Redelivered events must not duplicate rows (ARCHITECTURE §4): every effect is an upsert keyed by
a natural key or ``event_id``, so writing the same rows twice leaves the table as after once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from tm_common.db.tables import processed_events

_INSERTS: dict[str, Callable[[sa.Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert, "sqlite": sqlite.insert}

Target = AsyncSession | AsyncConnection | Session | Connection


def _dialect_name(target: Target) -> str:
    if isinstance(target, (AsyncConnection, Connection)):
        return target.dialect.name
    return target.get_bind().dialect.name


def _dedupe(rows: Iterable[Mapping[str, Any]], key_cols: Sequence[str]) -> list[dict[str, Any]]:
    # PostgreSQL refuses to update one row twice in one statement; the last row for a key wins.
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        try:
            key = tuple(row[c] for c in key_cols)
        except KeyError as e:
            raise ValueError(f"upsert row lacks key column {e.args[0]!r}") from None
        by_key[key] = dict(row)
    return list(by_key.values())


def upsert_statement(dialect: str, table: sa.Table, columns: Sequence[str],
                     key_cols: Sequence[str],
                     update_cols: Sequence[str] | None = None) -> postgresql.Insert | sqlite.Insert:
    """The dialect's ``INSERT ... ON CONFLICT`` for ``table``, to execute with a list of rows.

    ``update_cols`` default: every inserted column that is not a key; an empty sequence means
    ``DO NOTHING`` (insert once, first writer wins). Built once per shape and kept: building it
    (the ``excluded`` alias of every column) cost more than the write-behind writers' handlers.
    """
    return _statement(dialect, table, tuple(columns), tuple(key_cols),
                      None if update_cols is None else tuple(update_cols))


@functools.lru_cache(maxsize=256)
def _statement(dialect: str, table: sa.Table, columns: tuple[str, ...], key_cols: tuple[str, ...],
               update_cols: tuple[str, ...] | None) -> postgresql.Insert | sqlite.Insert:
    try:
        insert = _INSERTS[dialect]
    except KeyError:
        raise NotImplementedError(f"upsert supports postgresql and sqlite, not {dialect}") from None
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    stmt = insert(table)
    if update_cols is None:
        update_cols = tuple(c for c in columns if c not in key_cols)
    if not update_cols:
        return stmt.on_conflict_do_nothing(index_elements=list(key_cols))
    return stmt.on_conflict_do_update(index_elements=list(key_cols),
                                      set_={c: stmt.excluded[c] for c in update_cols})


async def upsert(target: AsyncSession | AsyncConnection, table: sa.Table,
                 rows: Iterable[Mapping[str, Any]], key_cols: Sequence[str],
                 update_cols: Sequence[str] | None = None) -> int:
    """Insert ``rows`` into ``table``, updating the rows whose ``key_cols`` already exist.

    ``key_cols`` must be the primary key or a unique constraint. Every row must have the same
    columns. Duplicate keys within ``rows``: the last one wins. ``update_cols``: see
    :func:`upsert_statement`. Runs in the caller's transaction (no commit). Returns the number
    of distinct rows sent (not the number changed: drivers do not report that portably).
    """
    batch = _dedupe(rows, key_cols)
    if not batch:
        return 0
    stmt = upsert_statement(_dialect_name(target), table, list(batch[0]), key_cols, update_cols)
    await target.execute(stmt, batch)
    return len(batch)


def upsert_sync(target: Session | Connection, table: sa.Table, rows: Iterable[Mapping[str, Any]],
                key_cols: Sequence[str], update_cols: Sequence[str] | None = None) -> int:
    """:func:`upsert` for synchronous sessions and connections (scripts, migrations)."""
    batch = _dedupe(rows, key_cols)
    if not batch:
        return 0
    stmt = upsert_statement(_dialect_name(target), table, list(batch[0]), key_cols, update_cols)
    target.execute(stmt, batch)
    return len(batch)


async def mark_processed(target: AsyncSession | AsyncConnection, consumer: str, event_id: str,
                         event_type: str = "", now_ms: int | None = None) -> bool:
    """Record that ``consumer`` applied ``event_id``; ``True`` the first time, ``False`` after.

    Call it in the same transaction as the effect: if it returns ``False`` the effect was already
    applied by an earlier delivery, so skip it. ``now_ms`` is bookkeeping only (defaults to the
    wall clock, never used in decisions).
    """
    insert = _INSERTS[_dialect_name(target)]
    stmt = (insert(processed_events)
            .values(consumer=consumer, event_id=event_id, event_type=event_type,
                    processed_at_ms=now_ms if now_ms is not None else int(time.time() * 1000))
            .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
            .returning(processed_events.c.event_id))
    result = await target.execute(stmt)
    return result.first() is not None
