"""Every table `tm` prints fits an 80-column terminal whole: no line is longer, no cell is cut
to `…`, and every value is still there."""

from __future__ import annotations

import re

from rich.console import Console
from tm_app.demo import SUMMARY_METRICS, summary_table
from tm_app.inspect_cli import streams_table
from tm_app.operate import audit_table
from tm_common.audit import AuditEntry


def text_at_80(renderable) -> str:
    console = Console(width=80, record=True, color_system=None)
    console.print(renderable)
    text = console.export_text()
    assert max(len(ln) for ln in text.splitlines()) <= 80, text
    assert "…" not in text, text
    box = "│┃┓┐┩┤┘"
    for ln in text.splitlines():      # no line cropped at the edge: each row ends in a border
        if ln[:1] in "│┃┏┡└┌├":
            assert ln.rstrip()[-1] in box, ln
    return text


def test_the_summary_table_is_one_metric_per_row():
    v = {"total_return": -0.04123, "sharpe": -2.2412, "sortino": -3.01, "calmar": -12.5,
         "max_drawdown": -0.0504, "win_rate": 0.4375, "turnover": 123.456,
         "fees": -1234.56, "funding": -98.76, "buy_and_hold": 0.1418}
    summary = {"stats": {"total": v, "per_instrument": {s: v for s in
                                                        ("BTCUSDT", "ETHUSDT", "SOLUSDT")}}}
    text = text_at_80(summary_table(summary, "mesh replay (processes, exchange sim)"))
    for label, _, _ in SUMMARY_METRICS:
        assert label in text
    for cell in ("-4.12%", "-2.24", "-3.01", "-12.50", "-5.04%", "43.75%", "123.46", "-1234.56",
                 "-98.76", "14.18%"):
        assert text.count(cell) == 4, cell            # total and the three instruments
    assert all(s in text for s in ("total", "BTCUSDT", "ETHUSDT", "SOLUSDT"))


def test_the_streams_table():
    groups = [{"name": n, "lag": 12345, "pending": 678} for n in
              ("regime", "signal", "sizer", "risk", "executor", "portfolio")]
    rows = [("md.bar", 1234567, groups, 3), ("sizing.target", 0, [], 0)]
    text = re.sub(r"\s+", " ", text_at_80(streams_table("tmrun:9c51494e:", rows)))
    for g in groups:
        assert f"{g['name']} (12345/678)" in text or g["name"] in text
    assert "1234567" in text and "md.bar" in text and "sizing.target" in text


def test_the_audit_table():
    entries = [AuditEntry(audit_id="a1", source="risk", at_ms=1_735_689_600_000,
                          kind="breaker_reset",
                          what="breaker OPEN -> CLOSED (manual reset after the drill)",
                          why="the drill is over and positions were checked by hand twice",
                          who="admin (cli user someone-with-a-long-name)",
                          event_id="0123456789abcdef")]
    text = text_at_80(audit_table(entries, 80))
    flat = re.sub(r"\s+", " ", text)
    assert "breaker_reset" in flat and "2025-01-01" in flat and "twice" in flat
    assert "0123456789ab" in audit_table_text(entries, 140)


def audit_table_text(entries, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(audit_table(entries, width))
    return console.export_text()
