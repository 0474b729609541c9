"""The audit trail: every arming, kill, breaker trip and reset, loss-limit trip, model promotion
and rollback, as one row of the ``audit`` table (``tm_common.db.tables.audit``).

A row says what happened, why (the operator's reason or the rule's), who (the admin token's name
and the CLI user it reports, the OS user of a CLI command, or the service for an automatic
trip), when (ms since the epoch, UTC) and the event that caused it (``event_id``, if any).

Writers:

- the risk and executor services queue rows on an :class:`AuditWriter` (the project's
  write-behind writer: in order, retried until they land), so an action taken while the database
  is down (a kill) still takes effect at once and its row lands when the database returns;
- the model registry inserts its rows in the transaction of the promotion or rollback itself
  (:func:`insert_audit`).

Ids are deterministic (:func:`audit_id` of the fact's natural key), so writing a row twice
(a redelivered command, a retried batch, a restart that re-queues its outbox) leaves one row.
"""

from __future__ import annotations

import getpass
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tm_common.db.tables import audit as AUDIT
from tm_common.db.upsert import upsert
from tm_common.db.writer import WriteBehindWriter
from tm_common.events.base import deterministic_id

AUDIT_KINDS = ("arming", "kill", "breaker_trip", "breaker_reset", "limit_trip", "promotion",
               "rollback")
MAX_WHY = 1000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row (see the module docstring; ``at_ms`` ms since the epoch, UTC)."""

    audit_id: str
    at_ms: int
    kind: str
    what: str
    why: str
    who: str
    source: str
    event_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in AUDIT_KINDS:
            raise ValueError(f"unknown audit kind {self.kind!r} (one of {', '.join(AUDIT_KINDS)})")

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["why"] = d["why"][:MAX_WHY]
        d["who"] = d["who"][:200]
        return d

    @classmethod
    def from_row(cls, row: Any) -> AuditEntry:
        m = dict(row._mapping if hasattr(row, "_mapping") else row)
        return cls(audit_id=str(m["audit_id"]), at_ms=int(m["at_ms"]), kind=str(m["kind"]),
                   what=str(m["what"]), why=str(m["why"] or ""), who=str(m["who"]),
                   source=str(m["source"]), event_id=m.get("event_id"))


def audit_id(kind: str, *key: object) -> str:
    """The row id of the fact ``kind`` with natural key ``key`` (deterministic)."""
    return deterministic_id("audit", kind, *key)


def cli_user() -> str:
    """The operating-system user running a command (``unknown`` when there is none)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (a container with a bare uid)
        return "unknown"


async def insert_audit(conn: AsyncConnection, entries: Sequence[AuditEntry]) -> None:
    """Upsert ``entries`` on ``conn`` (inside the caller's transaction)."""
    if entries:
        await upsert(conn, AUDIT, [e.row() for e in entries], ("audit_id",))


async def list_audit(engine: AsyncEngine, *, kind: str | None = None, since_ms: int | None = None,
                     limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` rows (newest first), optionally of one ``kind`` and at or after
    ``since_ms``."""
    q = sa.select(AUDIT).order_by(AUDIT.c.at_ms.desc(), AUDIT.c.audit_id).limit(limit)
    if kind is not None:
        q = q.where(AUDIT.c.kind == kind)
    if since_ms is not None:
        q = q.where(AUDIT.c.at_ms >= since_ms)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [AuditEntry.from_row(r) for r in rows]


class AuditWriter(WriteBehindWriter):
    """Audit rows written behind the action, retried until they land.

    ``migrate_url``: when given, the schema is brought to head (idempotent) before the first
    write, so a service that starts while the database is down needs no migration at start-up.
    ``written``: the ids of the rows that landed (the newest 4096), so a handler can drop them
    from its outbox."""

    service: ClassVar[str] = "audit"
    table: ClassVar[sa.Table] = AUDIT
    key: ClassVar[tuple[str, ...]] = ("audit_id",)

    def __init__(self, engine: AsyncEngine, *, migrate_url: str | None = None,
                 max_backoff_s: float = 10.0) -> None:
        super().__init__(engine, max_backoff_s=max_backoff_s,
                         prepare=None if migrate_url is None else partial(_migrate, migrate_url))
        self._recent: deque[str] = deque(maxlen=4096)
        self.written_ids: set[str] = set()

    def record(self, entries: Iterable[AuditEntry | dict[str, Any]]) -> None:
        """Queue entries (never waits for the database)."""
        self.save([e.row() if isinstance(e, AuditEntry) else dict(e) for e in entries])

    async def _write(self, batches: list[Any]) -> None:
        await super()._write(batches)
        for row in (r for batch in batches for r in batch):
            if len(self._recent) == self._recent.maxlen:
                self.written_ids.discard(self._recent[0])
            self._recent.append(row["audit_id"])
            self.written_ids.add(row["audit_id"])


async def _migrate(url: str) -> None:
    from tm_common.db.migrate import migrate_async

    await migrate_async(url)
