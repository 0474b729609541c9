"""Service table selection, spec building and /status summaries (no processes)."""

from __future__ import annotations

import json

import pytest
from tm_app.stack.services import (
    SERVICES,
    UnknownServiceError,
    build_specs,
    load_table,
    missing_reason,
    select,
)
from tm_app.stack.status import summarize


def test_table_has_every_service_with_distinct_ports():
    assert [s.name for s in SERVICES] == ["exchange_sim", "ingest", "regime", "signal", "sizer",
                                          "risk", "executor", "portfolio"]
    assert all(s.module == f"tm_{s.name}" for s in SERVICES)
    assert len({s.port for s in SERVICES}) == len(SERVICES)


def test_select_keeps_table_order_and_accepts_dashes():
    assert [s.name for s in select("risk, exchange-sim")] == ["exchange_sim", "risk"]
    assert select(None) == list(SERVICES) == select(" ")


def test_select_names_every_unknown_service():
    with pytest.raises(UnknownServiceError, match=r"unknown service\(s\): foo, bar \(choose"):
        select("foo,risk,bar")


def test_build_specs_sets_name_port_and_shared_env():
    specs = build_specs(select("ingest,risk"), {"TM_REDIS_URL": "redis://x"}, python="py",
                        port_offset=100)
    assert [(s.name, s.port, list(s.argv)) for s in specs] == [
        ("ingest", 8201, ["py", "-m", "tm_ingest"]), ("risk", 8205, ["py", "-m", "tm_risk"])]
    assert specs[0].env == {"TM_REDIS_URL": "redis://x", "TM_SERVICE_NAME": "ingest",
                            "TM_HTTP_PORT": "8201"}


def test_missing_reason():
    assert missing_reason("http.server") is None           # a runnable module
    assert "not installed" in missing_reason("tm_surely_not_a_module")
    assert "no __main__" in missing_reason("email")          # a package without __main__


def test_load_table(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"name": "a", "module": "m", "port": "9"}]))
    assert [(s.name, s.port) for s in load_table(path)] == [("a", 9)]
    path.write_text(json.dumps([{"name": "a", "module": "m", "port": 1}] * 2))
    with pytest.raises(ValueError, match="duplicate"):
        load_table(path)


def test_summarize_sums_lag_and_pending_over_streams():
    doc = {"handled": 7, "last_event": {"type": "bar.closed"},
           "streams": {"a": {"lag": 2, "pending": 1}, "b": {"lag": 3, "pending": 0}}}
    assert summarize(doc) == {"last_event": "bar.closed", "handled": 7, "lag": 5, "pending": 1}
    assert summarize({}) == {"last_event": None, "handled": None, "lag": None, "pending": None}
