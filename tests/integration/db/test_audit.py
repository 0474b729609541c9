"""The audit table on SQLite and PostgreSQL: promotions and rollbacks write their row in the
same transaction as the stage change; the write-behind writer is idempotent and waits out an
outage; ``list_audit`` filters by kind and time."""

from __future__ import annotations

import pytest
from tm_common.audit import AuditEntry, AuditWriter, audit_id, cli_user, list_audit
from tm_common.db import make_engine
from tm_common.models.registry import ModelRegistry
from tm_common.testing.databases import migrated_engine

from ..trainer.test_registry import _register


@pytest.fixture
async def engine(db_url):
    async with migrated_engine(db_url) as e:
        yield e


async def test_promotion_and_rollback_are_audited_with_who_and_why(engine):
    ticks = iter(range(1_000, 10_000_000, 1000))
    reg = ModelRegistry(engine, clock_ms=lambda: next(ticks))
    for v in ("r1", "r2"):
        await _register(reg, v)
    await reg.promote("r1", "first model")
    await reg.promote("r2", "better IC", who="alice")
    await reg.promote("r2", "again: a no-op")                     # nothing changes, no row
    await reg.rollback("regime", "r2 misbehaves live", who="bob")
    rows = await list_audit(engine)
    assert [(r.kind, r.why, r.who) for r in rows] == [
        ("rollback", "r2 misbehaves live", "bob"), ("promotion", "better IC", "alice"),
        ("promotion", "first model", cli_user())]
    assert rows[0].what == "regime model r1 to production (previous r2)"
    assert rows[1].what == "regime model r2 to production (previous r1)"
    assert all(r.source == "registry" for r in rows)
    assert [r.kind for r in await list_audit(engine, kind="promotion")] == ["promotion"] * 2
    assert [r.why for r in await list_audit(engine, since_ms=rows[1].at_ms)] == [
        "r2 misbehaves live", "better IC"]


async def test_the_writer_waits_out_an_outage_and_writing_twice_leaves_one_row(engine, db_url):
    e = AuditEntry(audit_id=audit_id("kill", "ev-1"), at_ms=5, kind="kill", what="breaker "
                   "CLOSED -> OPEN (kill)", why="drill", who="ops", source="risk", event_id="ev-1")
    down = make_engine("postgresql+asyncpg://tm@127.0.0.1:1/none")      # refuses connections
    writer = AuditWriter(down, max_backoff_s=0.05)
    writer.record([e])
    import asyncio
    task = asyncio.create_task(writer.run())
    for _ in range(100):
        if writer.failures >= 2:
            break
        await asyncio.sleep(0.02)
    assert writer.failures >= 2 and writer.written == 0 and e.audit_id not in writer.written_ids
    writer.engine = engine                                   # the database is back
    for _ in range(200):
        if writer.written:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await down.dispose()
    assert e.audit_id in writer.written_ids
    writer.record([e, e.row()])                              # a re-queued outbox: same id
    await writer.drain()
    assert await list_audit(engine) == [e]


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown audit kind 'oops'"):
        AuditEntry(audit_id="x", at_ms=0, kind="oops", what="", why="", who="", source="t")
