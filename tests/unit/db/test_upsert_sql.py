"""The SQL that upsert emits per dialect, and the exact-decimal column type (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from tm_common.db.tables import ALL_TABLES, bars, processed_events
from tm_common.db.types import ExactDecimal, json_dumps
from tm_common.db.upsert import _dedupe, upsert_statement

KEY = ["instrument", "interval_min", "open_time_ms"]
COLS = KEY + ["close", "volume"]


@pytest.mark.parametrize("name,dialect", [("postgresql", postgresql.dialect()),
                                          ("sqlite", sqlite.dialect())])
def test_on_conflict_updates_only_non_key_columns(name, dialect):
    sql = str(upsert_statement(name, bars, COLS, KEY).compile(dialect=dialect))
    assert "ON CONFLICT (instrument, interval_min, open_time_ms) DO UPDATE SET" in sql
    assert "close = excluded.close" in sql and "volume = excluded.volume" in sql
    assert "instrument = excluded" not in sql


@pytest.mark.parametrize("name,dialect", [("postgresql", postgresql.dialect()),
                                          ("sqlite", sqlite.dialect())])
def test_empty_update_cols_is_do_nothing(name, dialect):
    sql = str(upsert_statement(name, processed_events, ["consumer", "event_id"],
                               ["consumer", "event_id"]).compile(dialect=dialect))
    assert sql.endswith("ON CONFLICT (consumer, event_id) DO NOTHING")


def test_unsupported_dialect_and_unknown_columns():
    with pytest.raises(NotImplementedError, match="mysql"):
        upsert_statement("mysql", bars, COLS, KEY)
    with pytest.raises(ValueError, match="no column"):
        upsert_statement("sqlite", bars, COLS + ["bogus"], KEY)


def test_dedupe_keeps_the_last_row_per_key_in_first_seen_order():
    rows = [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}, {"k": 1, "v": "c"}]
    assert _dedupe(rows, ["k"]) == [{"k": 1, "v": "c"}, {"k": 2, "v": "b"}]


def test_exact_decimal_binds_text_on_sqlite_and_decimal_on_postgres():
    t = ExactDecimal()
    assert t.process_bind_param(Decimal("0.10"), sqlite.dialect()) == "0.10"
    assert t.process_bind_param(Decimal("0.10"), postgresql.dialect()) == Decimal("0.10")
    assert t.process_bind_param(3, sqlite.dialect()) == "3"
    assert t.process_result_value("1E-30", sqlite.dialect()) == Decimal("1E-30")
    for bad in (0.1, Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises((TypeError, ValueError)):
            t.process_bind_param(bad, sqlite.dialect())


def test_json_dumps_turns_decimals_into_strings():
    assert json_dumps({"b": Decimal("1.50"), "a": (1, 2)}) == '{"a":[1,2],"b":"1.50"}'


def test_every_table_has_a_primary_key_and_money_is_exact():
    for table in ALL_TABLES:
        assert table.primary_key.columns, table.name
    for col in ("open", "high", "low", "close", "volume"):
        assert isinstance(bars.c[col].type, ExactDecimal)


def test_only_sqlite_file_urls_have_a_file():
    from sqlalchemy.engine import make_url
    from tm_common.db.engine import sqlite_path

    # A PostgreSQL database name is not a file: migrate() must not create a lock beside it.
    assert sqlite_path(make_url("postgresql+asyncpg://u@h/tm_test_x")) is None
    assert sqlite_path(make_url("sqlite+aiosqlite://")) is None
    assert sqlite_path(make_url("sqlite+aiosqlite:///:memory:")) is None
    assert str(sqlite_path(make_url("sqlite+aiosqlite:////tmp/a/b.db"))) == "/tmp/a/b.db"
