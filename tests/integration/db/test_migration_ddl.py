"""The revisions' SQL text, as Alembic prints it offline (``upgrade --sql``), on both dialects:
every placeholder filled, and exactly the tables, columns (type, NULL), indexes of tables.py."""

from __future__ import annotations

import io
import re

import pytest
from alembic import command
from sqlalchemy.dialects import postgresql, sqlite
from tm_common.db.migrate import alembic_config
from tm_common.db.migrations import ddl
from tm_common.db.tables import ALL_TABLES

URLS = {"postgresql": "postgresql+asyncpg://u@h/db", "sqlite": "sqlite:///unused.db"}
DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}
TABLES = {t.name: t for t in ALL_TABLES}
# What 0001 created, kept as it ran (see its docstring): tables.py's type compiles to BIGINT.
AS_CREATED = {("postgresql", "portfolio_snapshots", "bar_time_ms"): "BIGSERIAL"}


def _offline(dialect: str, fn, revision: str) -> str:
    cfg = alembic_config(URLS[dialect])
    cfg.output_buffer = io.StringIO()
    fn(cfg, revision, sql=True)
    return cfg.output_buffer.getvalue()


def _columns(body: str) -> dict[str, tuple[str, bool]]:
    """``name -> (type, nullable)`` from the body of a CREATE TABLE."""
    columns = {}
    for line in body.splitlines():
        line = line.strip().rstrip(",")
        if not line or line.startswith("CONSTRAINT"):
            continue
        name, rest = line.split(" ", 1)
        columns[name] = (re.split(r" DEFAULT | NOT NULL", rest)[0], not rest.endswith("NOT NULL"))
    return columns


@pytest.mark.parametrize("dialect", sorted(URLS))
def test_offline_upgrade_creates_exactly_the_declared_schema(dialect):
    sql = _offline(dialect, command.upgrade, "head")
    assert not re.search(r"[{}]", sql), "an unfilled placeholder"
    created = dict(re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", sql, re.S))
    for table, column in re.findall(r"ALTER TABLE (\w+) ADD COLUMN (.*?);", sql):
        created[table] += f"\n    {column},"          # a later revision's column, as declared
    assert set(created) == set(TABLES) | {"alembic_version"}
    for name, table in TABLES.items():
        expected = {c.name: (AS_CREATED.get((dialect, name, c.name))
                             or c.type.compile(dialect=DIALECTS[dialect]), c.nullable)
                    for c in table.columns}
        assert _columns(created[name]) == expected, name
    indexes = set(re.findall(r"CREATE INDEX (\w+) ON (\w+) \(([^)]*)\)", sql))
    assert indexes == {(ix.name, t.name, ", ".join(c.name for c in ix.columns))
                       for t in ALL_TABLES for ix in t.indexes}


@pytest.mark.parametrize("dialect", sorted(URLS))
def test_offline_downgrade_drops_every_table_once_after_its_indexes(dialect):
    sql = _offline(dialect, command.downgrade, "head:base")
    assert not re.search(r"[{}]", sql)
    dropped = re.findall(r"DROP TABLE (\w+);", sql)
    assert sorted(dropped) == sorted(TABLES)
    for index in re.findall(r"DROP INDEX (\w+);", sql):
        table = next(t.name for t in ALL_TABLES if index in {ix.name for ix in t.indexes})
        assert sql.index(f"DROP INDEX {index};") < sql.index(f"DROP TABLE {table};")


def test_statements_refuse_an_unknown_placeholder_or_dialect():
    assert ddl.statements("CREATE TABLE t (x {json});\n\nDROP TABLE t;\n", "sqlite") == [
        "CREATE TABLE t (x JSON)", "DROP TABLE t"]
    with pytest.raises(KeyError):
        ddl.statements("CREATE TABLE t (x {jsonb})", "postgresql")
    with pytest.raises(ValueError, match="mysql"):
        ddl.statements("CREATE TABLE t (x INTEGER)", "mysql")
    assert set(ddl.SPELLINGS["sqlite"]) == set(ddl.SPELLINGS["postgresql"])


@pytest.mark.parametrize("dialect", sorted(URLS))
def test_the_snapshot_key_loses_its_sequence_on_postgresql_only(dialect):
    """0004 runs on PostgreSQL alone (SQLite's key never had a default), and its downgrade puts
    back exactly what 0001 created there."""
    up = _offline(dialect, command.upgrade, "0003_audit:0004_snapshot_key")
    down = _offline(dialect, command.downgrade, "0004_snapshot_key:0003_audit")
    changes = ("ALTER TABLE", "SEQUENCE")
    if dialect == "sqlite":
        assert not any(c in up + down for c in changes)
        return
    assert "ALTER TABLE portfolio_snapshots ALTER COLUMN bar_time_ms DROP DEFAULT;" in up
    assert "DROP SEQUENCE portfolio_snapshots_bar_time_ms_seq;" in up
    assert "CREATE SEQUENCE portfolio_snapshots_bar_time_ms_seq OWNED BY " \
           "portfolio_snapshots.bar_time_ms;" in down
    assert "SET DEFAULT nextval('portfolio_snapshots_bar_time_ms_seq')" in down


@pytest.mark.parametrize("dialect", sorted(URLS))
def test_the_snapshots_get_their_transfers_column_and_lose_it_on_downgrade(dialect):
    up = _offline(dialect, command.upgrade, "0004_snapshot_key:0005_snapshot_transfers")
    down = _offline(dialect, command.downgrade, "0005_snapshot_transfers:0004_snapshot_key")
    spelled = "NUMERIC" if dialect == "postgresql" else "VARCHAR(64)"
    assert f"ALTER TABLE portfolio_snapshots ADD COLUMN transfers {spelled} DEFAULT '0' " \
           "NOT NULL;" in up
    assert "ALTER TABLE portfolio_snapshots DROP COLUMN transfers;" in down
