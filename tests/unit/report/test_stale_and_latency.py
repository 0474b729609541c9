"""Issue 16 part 7: a stale input (DVOL older than its limit) is shown in the report, and a
backtest's latency reads "not measured (in-process)" instead of made-up numbers."""

from __future__ import annotations

import msgspec
from tm_app.report.html import write_report
from tm_common.bus.streams import MD_BAR, SIGNAL_TL
from tm_common.events import Envelope
from tm_common.events.signals import SignalGenerated

from .records import H4, T0, synthetic_run


def _with_signals(reasons: list[str]):
    rec = synthetic_run()
    rec.streams[SIGNAL_TL] = [
        Envelope.root(SignalGenerated(instrument="BTCUSDT", bar_time_ms=T0 + i * H4, direction=1,
                                      probability=0.6, confidence=0.1, reason=r),
                      key=f"s{i}", correlation_id=f"s{i}", ts_event_ns=1, ts_init_ns=1)
        for i, r in enumerate(reasons)]
    return rec


def test_a_stale_dvol_is_shown_with_its_age_and_limit(tmp_path):
    rec = _with_signals(["ok", "ok; stale dvol (age 2.4 d > 2.0 d)",
                         "ok; stale dvol (age 3.1 d > 2.0 d); stale funding (none known)", "ok"])
    summary = write_report(rec, tmp_path, initial_equity=10000.0, meta={"mode": "test"})
    dv = summary["stale_inputs"]["dvol"]
    assert dv["signals"] == 2 and dv["max_age_days"] == 3.1 and dv["limit_days"] == 2.0
    assert dv["instruments"] == ["BTCUSDT"] and dv["first_utc"] == "2025-01-30T04:00:00Z"
    assert summary["stale_inputs"]["funding"]["max_age_days"] is None
    page = (tmp_path / "report.html").read_text()
    assert "stale input" in page and "<td>dvol</td>" in page and "3.1000" in page


def test_no_stale_input_is_said(tmp_path):
    summary = write_report(_with_signals(["ok", "ok"]), tmp_path, initial_equity=10000.0,
                           meta={"mode": "test"})
    assert summary["stale_inputs"] == {}
    assert "No input was stale" in (tmp_path / "report.html").read_text()


def test_backtest_latency_is_not_measured_in_process(tmp_path):
    rec = _with_signals(["ok"])
    # an in-process backtest's bars carry no wall clock (ts_init 0)
    rec.streams[MD_BAR] = [msgspec.structs.replace(e, ts_init_ns=0) for e in rec.streams[MD_BAR]]
    rec.streams[SIGNAL_TL] = [Envelope.root(e.body, key="k", correlation_id=b.correlation_id,
                                            ts_event_ns=1, ts_init_ns=1_800_000_000_000_000_000)
                              for e, b in zip(rec.streams[SIGNAL_TL], rec.streams[MD_BAR])]
    summary = write_report(rec, tmp_path, initial_equity=10000.0, meta={"mode": "backtest"})
    assert summary["latency"] == "not measured (in-process)" and summary["latency_ms"] == {}
    assert "not measured (in-process)" in (tmp_path / "report.html").read_text()
