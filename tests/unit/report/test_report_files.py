"""The written report: strict JSON (null, never NaN), the trade list as CSV, monthly returns,
buy and hold beside the strategy, the banner and the models, UTC times, and a page that needs
no network (uPlot inlined, the charts' data embedded as JSON)."""

from __future__ import annotations

import csv
import json
import re

import pytest
from tm_app.record import RunRecord
from tm_app.report.html import write_report

from .records import T0, N, synthetic_run

INITIAL = 10000.0


def strict_load(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_strict_parser_refuses_nan():          # the check below can fail
    with pytest.raises(ValueError, match="NaN"):
        strict_load('{"x": NaN}')


@pytest.mark.parametrize("rec", [RunRecord(), synthetic_run()], ids=["empty run", "synthetic"])
def test_report_json_is_strict_json(rec, tmp_path):
    summary = write_report(rec, tmp_path, initial_equity=INITIAL,
                           meta={"mode": "test", "odd": float("nan")})
    doc = strict_load((tmp_path / "report.json").read_text())
    assert doc == summary
    if not rec.snapshots:                       # every statistic is undefined: null
        assert doc["stats"]["total"]["sharpe"] is None
        assert doc["trades"]["stats"]["win_rate"] is None
    assert doc["meta"]["odd"] is None
    data = re.search(r'<script type="application/json" id="tm-chart-data">(.*?)</script>',
                     (tmp_path / "report.html").read_text(), re.S)
    strict_load(data.group(1))


@pytest.fixture
def written(tmp_path):
    rec = synthetic_run()
    meta = {"mode": "test", "banner": ["production traded flat: signal <refused>", "next: try"],
            "models": {"signal": None, "regime": "regime-1", "rl": None,
                       "signal_candidate": {"version": "signal-9", "stage": "candidate",
                                            "gate_passed": False, "mean_ic": -0.046,
                                            "sharpe": -2.24,
                                            "why": "OOS mean IC -0.0460 < 0.03"}}}
    summary = write_report(rec, tmp_path, initial_equity=INITIAL, meta=meta)
    return rec, summary, (tmp_path / "report.html").read_text(), tmp_path


def test_trades_in_the_summary_the_page_and_the_csv(written):
    rec, summary, page, out = written
    rows = list(csv.DictReader((out / "trades.csv").open()))
    assert [(r["instrument"], r["side"], r["status"]) for r in rows] == [
        ("BTCUSDT", "long", "closed"), ("ETHUSDT", "short", "open")]
    btc = rows[0]
    assert (btc["entry_time_utc"], btc["exit_time_utc"]) == ("2025-01-30T08:00:00Z",
                                                             "2025-01-31T16:00:00Z")
    assert float(btc["holding_hours"]) == 32
    # long 1 from 102 to 110: +8, fees 0.102 + 0.110, funding 1 × 108 × 0.0001
    assert float(btc["pnl"]) == pytest.approx(8 - 0.212 - 0.0108)
    assert summary["trades"]["stats"]["trades"] == 1 and summary["trades"]["stats"]["open"] == 1
    assert summary["trades"]["list"][0]["pnl"] == pytest.approx(float(btc["pnl"]))
    assert "2025-01-31T16:00:00Z" in page and 'href="trades.csv"' in page
    # the trade PnLs add up to the equity's change (the open ETH short marked at the last close)
    total = sum(r["pnl"] for r in summary["trades"]["list"])
    assert total == pytest.approx(float(rec.snapshots[-1].equity) - INITIAL)


def test_monthly_returns_and_buy_and_hold_beside_the_strategy(written):
    rec, summary, page, _ = written
    st = summary["stats"]
    end_of_jan = [float(s.equity) for s in rec.snapshots if s.bar_time_ms < T0 + 2 * 86_400_000]
    assert [(m["year"], m["month"]) for m in st["monthly_returns"]] == [(2025, 1), (2025, 2)]
    assert st["monthly_returns"][0]["return"] == pytest.approx(end_of_jan[-1] / INITIAL - 1)
    assert st["monthly_returns"][1]["return"] == pytest.approx(
        float(rec.snapshots[-1].equity) / end_of_jan[-1] - 1)
    bh = st["buy_and_hold"]                    # both instruments rise 23 % over the run
    assert bh["total_return"] == pytest.approx(0.23) and bh["max_drawdown"] == 0
    assert set(bh) >= {"sharpe", "sortino", "calmar", "cagr", "final_equity"}
    assert st["total"]["buy_and_hold"] == pytest.approx(0.23)
    assert "Strategy vs buy and hold" in page and "23.00 %" in page
    assert "<th>Jan</th>" in page and "Monthly returns" in page


def test_banner_first_models_with_gates_and_utc_times(written):
    _, summary, page, _ = written
    banner = page.index('id="banner"')
    assert banner < page.index("Strategy vs buy and hold")
    assert "production traded flat: signal &lt;refused&gt;" in page      # escaped
    assert '<div class="banner"><h2 id="banner">What traded and why</h2>' in page
    assert "Models and their gates" in page and "regime-1" in page
    assert "signal-9" in page and "OOS mean IC -0.0460 &lt; 0.03" in page and "refused" in page
    assert "none in production" in page                       # no production signal model
    breaker = page[page.index('id="breaker"'):page.index('id="latency"')]
    assert "2025-01-31T04:00:00Z" in breaker and "2025-02-01T04:00:00Z" in breaker
    assert str(T0 + 7 * 4 * 3_600_000) not in breaker        # no epoch ms shown
    assert summary["breaker_events"][0]["at_utc"] == "2025-01-31T04:00:00Z"


def test_the_page_is_self_contained_with_the_run_data_embedded(written):
    rec, _, page, _ = written
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page), "an external resource"
    assert "uPlot" in page and "tmCharts" in page and "u-legend" in page     # JS + CSS inline
    data = json.loads(re.search(r'id="tm-chart-data">(.*?)</script>', page, re.S).group(1))
    eq = data["equity"]
    assert len(eq["t"]) == len(eq["strategy"]) == len(eq["buy_and_hold"]) == N
    assert eq["t"][0] == T0 / 1000 and eq["strategy"][-1] == float(rec.snapshots[-1].equity)
    assert data["tiers"]["tiers"][data["tiers"]["series"]["BTCUSDT"][0]] == "FLAT"
    assert [b["to"] for b in data["markers"]["breaker"]] == ["OPEN", "CLOSED"]
    assert [r["label"] for r in data["markers"]["regimes"]] == ["Bull", "Bear"]


def test_models_unavailable_is_said_not_fatal(tmp_path):
    write_report(synthetic_run(), tmp_path, initial_equity=INITIAL, meta={"mode": "test"})
    page = (tmp_path / "report.html").read_text()
    assert "Model registry unavailable" in page and "Newest signal candidate" not in page


def test_latency_without_a_wall_clock_is_said_and_rejections_fold_their_counts():
    from tm_app.report import sections as S
    real = {"bar→fill": {"n": 3, "p50": 4.2, "p90": 5.0, "p99": 6.0, "max": 7.0}}
    assert "4.2000" in S.latency(real) and "Not measured" not in S.latency(real)
    assert "Not measured" in S.latency({"bar→fill": {**real["bar→fill"], "p50": 1.7e12}})
    page = S.counts({"VaR needs 60 aligned 4h returns, have 3": 3,
                     "VaR needs 60 aligned 4h returns, have 17": 2, "skipped": 9}, "reason")
    assert page.index("skipped") < page.index("have …") and "<td>5</td>" in page


def test_the_console_summary_of_a_run_without_signals(tmp_path, capsys):
    """An undefined IC is null in the summary; the demo's console lines still print."""
    from tm_app.backtest import RunConfig
    from tm_app.demo import report
    from tm_app.mesh import ShadowRun

    cfg = RunConfig(start_ms=T0, end_ms=T0 + N * 4 * 3_600_000, database_url="")
    summary = report(synthetic_run(), cfg, tmp_path, {"mode": "test"},
                     shadow=ShadowRun("cand-1", "ns:", synthetic_run(), {}))
    assert summary["challenger"]["stats"]["signal_ic"]["all"] is None
    assert "models" not in summary["meta"]                  # no registry: none recorded
    assert "could not be read" in summary["meta"]["banner"][0]
    out = capsys.readouterr().out
    assert "challenger: 0 orders" in out and "IC –" in out and "report.html" in out
