"""The report of a real backtest (production and a challenger), opened in a real headless
Chromium over the DevTools protocol: no console error or exception, every chart drawn from the
run's data, hover and zoom working; the trade list adds up to the run's equity; report.json is
strict JSON; the models and their gates come from the registry.

Chromium is required (CI installs it, .ci/run): a machine without it fails here, it does not skip.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from tm_app.backtest import RunConfig, run_backtest
from tm_app.explain import models_in_use
from tm_app.mesh import ShadowRun
from tm_app.report.attribution import attribute
from tm_app.report.html import write_report
from tm_app.report.trades import round_trips
from tm_app.testing.browser import BrowserMissing, chromium_page, find_chromium
from tm_common.db import make_engine
from tm_common.history import load_bars
from tm_common.models.registry import ModelRegistry
from tm_common.testing.databases import migrated_engine
from tm_signal.testing import register_signal_versions

START, N = 5000, 90
# a test configuration under which the test models' window trades (as the shadow tests')
TRADING_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_SIZER_BLENDED_CONFIDENCE": "0.08",
               "TM_SIZER_KELLY_MIN_EACH": "1", "TM_SIZER_KELLY_PRIOR_B": "1.5"}
WHY = "OOS mean IC -0.0500 < 0.03; OOS Sharpe after costs -1.2000 <= 0.5"


def strict_load(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def chromium() -> str:
    try:
        return find_chromium()
    except BrowserMissing as e:
        pytest.fail(f"the report's browser test needs Chromium: {e}")


async def _registry(url: str) -> None:
    bars = load_bars("BTCUSDT")
    async with migrated_engine(url) as engine:
        reg = ModelRegistry(engine)
        await register_signal_versions(reg, first_bar_ms=bars[START - 250].open_time_ms,
                                       metrics={"gate_passed": False, "mean_ic": -0.05,
                                                "sharpe": -1.2, "why": WHY})
        await reg.promote("v1", "test: production")


async def _promote(url: str, version: str) -> None:
    engine = make_engine(url)
    await ModelRegistry(engine).promote(version, "test: the challenger's backtest")
    await engine.dispose()


@pytest.fixture
def report(tmp_path, monkeypatch):
    """A backtest of v1 (production) with v2 as the challenger, its report written."""
    for k, v in TRADING_ENV.items():
        monkeypatch.setenv(k, v)
    url = f"sqlite+aiosqlite:///{tmp_path}/tm.db"
    asyncio.run(_registry(url))
    bars = load_bars("BTCUSDT")
    cfg = RunConfig(start_ms=bars[START].open_time_ms, end_ms=bars[START + N - 1].open_time_ms,
                    database_url=url, extra_env=TRADING_ENV)
    rec = asyncio.run(run_backtest(cfg))
    models = models_in_use(url).as_meta()
    asyncio.run(_promote(url, "v2"))
    challenger = ShadowRun("v2", "test:shadow:v2:", asyncio.run(run_backtest(cfg)), {})
    out = tmp_path / "report"
    meta = {"mode": "backtest (test)", "models": models,
            "banner": ["production traded: signal v1", "shadow challenger: signal v2"]}
    summary = write_report(rec, out, initial_equity=100000.0, meta=meta, challenger=challenger)
    return rec, challenger.record, summary, out


def test_the_trades_add_up_to_the_equity_and_the_json_is_strict(report):
    rec, _, summary, out = report
    doc = strict_load((out / "report.json").read_text())
    assert doc["counts"]["fills"] > 20 and doc["trades"]["stats"]["trades"] > 3
    # the fills the last snapshot accounted (later ones fill at the close of the last bar)
    last = rec.snapshots[-1]
    accounted = [e for e in rec.executions
                 if getattr(e, "exec_time_ms", getattr(e, "settle_time_ms", 0)) <= last.bar_time_ms]
    trades, stray = round_trips(accounted, {p.instrument: p.mark_price for p in last.positions})
    assert stray == 0
    assert float(sum(t.pnl for t in trades)) == pytest.approx(float(last.equity) - 100000.0, abs=1e-6)
    assert sum(t.fees for t in trades) == last.fees and sum(t.funding for t in trades) == last.funding
    # the per-instrument rows add up to the total, exactly (issue 16 part 7)
    att = attribute(rec, Decimal(100000))
    assert att.residual == 0 and sum(a.pnl for a in att.instruments.values()) == \
        last.equity - Decimal(100000)
    assert sum(a.fees for a in att.instruments.values()) == last.fees
    assert sum(a.funding for a in att.instruments.values()) == last.funding
    assert sum(a.slippage for a in att.instruments.values()) > 0      # the venue's 2 bps
    per, tot = doc["stats"]["per_instrument"], doc["stats"]["total"]
    assert sum(r["pnl"] for r in per.values()) == pytest.approx(tot["pnl"], abs=0.005)
    assert sum(r["total_return"] for r in per.values()) == pytest.approx(tot["total_return"],
                                                                      abs=1e-9)
    assert doc["latency"] == "not measured (in-process)"
    csv_rows = (out / "trades.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + len(doc["trades"]["list"])
    # the models from the registry: v1 in production, v2 the candidate with its gates
    m = doc["meta"]["models"]
    assert m["signal"] == "v1" and m["regime"] is None
    assert m["signal_candidate"]["version"] == "v2" and m["signal_candidate"]["why"] == WHY
    assert m["signal_candidate"]["gate_passed"] is False


JS_CHARTS = """Object.fromEntries(Object.entries(window.tmCharts).map(([k, u]) =>
  [k, {points: u.data[0].length, series: u.data.length - 1,
       first: u.data[1].find(v => v != null), last: u.data[1].findLast(v => v != null)}]))"""

JS_HOVER = """(() => { const u = tmCharts.equity;
  u.setCursor({left: u.bbox.width / devicePixelRatio / 2, top: 20});
  return [...u.root.querySelectorAll('.u-legend .u-value')].map(e => e.textContent); })()"""

JS_ZOOM = """(async () => { const u = tmCharts.equity, t = u.data[0];
  u.setScale('x', {min: t[10], max: t[40]});
  await new Promise(r => setTimeout(r, 100));         // uPlot commits a new scale batched
  const d = tmCharts.drawdown.scales.x;
  return [d.min, d.max, t[10], t[40]]; })()"""


def test_the_page_in_a_real_browser(report, chromium):
    rec, shadow, summary, out = report

    async def check():
        async with chromium_page() as page:
            await page.goto((out / "report.html").as_uri())
            charts = await page.eval(JS_CHARTS)
            hover = await page.eval(JS_HOVER)
            zoom = await page.eval(JS_ZOOM)
            title = await page.eval("document.querySelector('.banner .line').textContent")
            await page.screenshot(out / "report.png")
            return page.problems, charts, hover, zoom, title
    problems, charts, hover, zoom, title = asyncio.run(check())
    assert problems == [], problems
    assert set(charts) == {"equity", "drawdown", "positions", "tiers", "compare",
                           "compareDrawdown", "challengerPositions", "challengerTiers"}
    n = len(rec.snapshots)
    eq = charts["equity"]
    assert eq["points"] == n and eq["series"] == 2
    assert eq["first"] == float(rec.snapshots[0].equity)
    assert eq["last"] == summary["stats"]["total"]["final_equity"]
    assert charts["positions"]["points"] == n and charts["positions"]["series"] == 3
    assert charts["tiers"]["points"] == len({z.bar_time_ms for z in rec.sized})
    assert charts["compare"]["points"] == n and charts["compare"]["series"] == 2
    assert charts["compare"]["last"] == summary["stats"]["total"]["final_equity"]
    assert charts["challengerPositions"]["points"] == len(shadow.snapshots)
    # hover: the legend shows the values under the cursor, the time in UTC
    assert hover[0].endswith(" UTC") and all(v != "–" for v in hover), hover
    # zoom on the equity chart is also the drawdown chart's
    assert zoom[0] == zoom[2] and zoom[1] == zoom[3]
    assert title == "production traded: signal v1"
    assert (out / "report.png").stat().st_size > 50_000


def test_the_browser_check_sees_errors(tmp_path, chromium):
    """The check above can fail: a page with an exception and a console error is reported."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><script>console.error('boom');</script>"
                   "<script>undefinedFunction();</script><img src='missing.png'>")

    async def check():
        async with chromium_page() as page:
            await page.goto(bad.as_uri())
            await asyncio.sleep(0.3)
            return page.problems
    problems = asyncio.run(check())
    assert any("boom" in p for p in problems), problems
    assert any("undefinedFunction" in p for p in problems), problems
    assert any("missing.png" in p for p in problems), problems
