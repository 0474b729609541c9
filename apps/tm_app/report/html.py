"""One self-contained HTML report (interactive uPlot charts, the library inlined: no network),
``report.json`` (the numbers, strict JSON: ``null`` for a missing number, never ``NaN``) and
``trades.csv`` (the round trips)."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from tm_app.record import RunRecord
from tm_app.report import sections as S
from tm_app.report.charts import chart_data
from tm_app.report.stale import stale_inputs
from tm_app.report.trades import round_trips, trade_row, trade_stats, utc_iso, write_csv
from tm_app.stats import percentiles, run_stats


def trades_summary(rec: RunRecord) -> dict:
    """The round trips of a run: the list (plain rows), statistics overall and per instrument,
    and funding paid while no trade was open."""
    trades, stray = round_trips(rec.executions, rec.last_marks())
    end_ms = max((s.bar_time_ms for s in rec.snapshots), default=None)
    by_inst: dict[str, list] = {}
    for t in trades:
        by_inst.setdefault(t.instrument, []).append(t)
    return {"stats": trade_stats(trades),
            "per_instrument": {i: trade_stats(ts) for i, ts in sorted(by_inst.items())},
            "unattributed_funding": float(stray),
            "list": [trade_row(t, end_ms) for t in trades]}


def book_summary(rec: RunRecord, *, initial_equity: float) -> dict:
    """The numbers of one book (production or a challenger): statistics, trades, tiers, counts."""
    return {"stats": run_stats(rec, initial_equity),
            "trades": trades_summary(rec),
            "tiers": dict(Counter(z.tier for z in rec.sized)),
            "sizing_reasons": dict(Counter(z.reason[:90] for z in rec.sized).most_common(3)),
            "counts": {"bars": len(rec.bars), "signals": len(rec.signals),
                       "orders": len(rec.orders), "fills": len(rec.fills),
                       "snapshots": len(rec.snapshots)}}


INTRABAR_KEY = "intra-bar marks"


def intrabar_marks(mode: str, poll_s: float | None = None) -> str:
    """What the report says about intra-bar marks: ``off (replay)`` / ``off (backtest)`` for a
    run on recorded bars (no ticker is polled, the breaker acts at bar closes only), else ``on,
    every N s`` (``poll_s``: ingest's ``TM_INGEST_MARK_POLL_S``; 0 = ``off``)."""
    for kind in ("replay", "backtest"):
        if kind in mode:
            return f"off ({kind})"
    if poll_s is None:
        return "not recorded"
    return f"on, every {poll_s:g} s" if poll_s > 0 else "off (TM_INGEST_MARK_POLL_S=0)"


VENUE_STOP_KEY = "venue stop loss"


def venue_stop(mode: str, ratio: float | None = None) -> str:
    """What the report says about the executor's stop on the venue: ``off (replay)`` / ``off
    (backtest)`` on recorded bars (the default there), else the position loss it closes at
    (``ratio``: ``TM_EXECUTOR_VENUE_STOP_LOSS`` as the run used it; 0 = ``off``)."""
    for kind in ("replay", "backtest"):
        if kind in mode:
            return f"off ({kind})"
    if ratio is None:
        return "not recorded"
    return (f"on: a position that lost {ratio:.0%} of equity" if ratio > 0
            else "off (TM_EXECUTOR_VENUE_STOP_LOSS=0)")


def build_summary(rec: RunRecord, *, initial_equity: float, meta: dict,
                  challenger: Any = None) -> dict:
    """The report's numbers (what report.json holds, before :func:`strict`). ``challenger``: a
    shadow book's run (``candidate``, ``namespace``, ``record``), under ``"challenger"``.
    ``meta`` gets :data:`INTRABAR_KEY` and :data:`VENUE_STOP_KEY` from its ``mode`` unless the
    caller said (paper does)."""
    mode = str(meta.get("mode", ""))
    meta = {**meta, INTRABAR_KEY: meta.get(INTRABAR_KEY) or intrabar_marks(mode),
            VENUE_STOP_KEY: meta.get(VENUE_STOP_KEY) or venue_stop(mode)}
    lat, lat_note = S.latency_summary({k: percentiles(v) for k, v in rec.latencies_ms().items()})
    extra = {} if challenger is None else {"challenger": {
        "candidate": challenger.candidate, "namespace": challenger.namespace,
        "label": f"challenger {challenger.candidate} (shadow book, paper)",
        **book_summary(challenger.record, initial_equity=initial_equity)}}
    book = book_summary(rec, initial_equity=initial_equity)
    return {**extra,
        "meta": meta,
        "stats": book["stats"],
        "trades": book["trades"],
        "tiers": book["tiers"],
        "regimes": dict(Counter(r.label for r in rec.regimes)),
        "breaker_events": [{"at_utc": utc_iso(b.at_ms), "at_ms": b.at_ms, "from": b.from_state,
                            "to": b.to_state, "trigger": b.trigger, "reason": b.reason}
                           for b in rec.breaker],
        "rejections": dict(Counter(r.reason.split(":")[0] for r in rec.rejections)),
        "latency_ms": lat,
        **({} if lat_note is None else {"latency": lat_note}),
        "stale_inputs": stale_inputs(rec),
        "dead_letters": {k: v for k, v in rec.dead_letters.items() if v},
        "counts": book["counts"],
    }


def strict(v: Any) -> Any:
    """``v`` with every non-finite float (NaN, ±inf) as None and Decimals as floats: what
    ``json.dumps(..., allow_nan=False)`` accepts, so that any strict parser reads the file."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Decimal):
        return strict(float(v))
    if isinstance(v, dict):
        return {str(k): strict(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [strict(x) for x in v]
    return v


def dumps_strict(v: Any, **kw: Any) -> str:
    return json.dumps(strict(v), allow_nan=False, default=str, **kw)


@cache
def _asset(*parts: str) -> str:
    """A file shipped in this package (package data: ``report.js``, ``vendor/*``)."""
    path = files("tm_app.report")
    for p in parts:
        path = path / p
    return path.read_text(encoding="utf-8")


def _script_json(v: Any) -> str:
    """JSON safe inside ``<script>``: no ``</script>`` or ``<!--`` can close the element."""
    return dumps_strict(v, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _chart(el_id: str, title: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<h3>{title}</h3>{note_html}<div class="chart" id="{el_id}"></div>'


def _compare(summary: dict, prod_reasons: list) -> str:
    """The side-by-side section: production and the challenger, clearly labelled."""
    ch = summary["challenger"]
    a, b = summary["stats"], ch["stats"]
    rows_spec = [("total return", "total_return", True), ("Sharpe", "sharpe", False),
                 ("max drawdown", "max_drawdown", True), ("final equity", "final_equity", False),
                 ("orders", "orders", False), ("fees", "fees", False),
                 ("turnover", "turnover", False)]
    head = f"<tr><th></th><th>production</th><th>{html.escape(ch['label'])}</th></tr>"
    rows = "".join(f"<tr><th>{n}</th><td>{S.pct(a['total'].get(k)) if p else S.fmt(a['total'].get(k))}"
                   f"</td><td>{S.pct(b['total'].get(k)) if p else S.fmt(b['total'].get(k))}</td></tr>"
                   for n, k, p in rows_spec)
    ta, tb = summary["trades"]["stats"], ch["trades"]["stats"]
    rows += (f"<tr><th>trades (closed)</th><td>{ta['trades']}</td><td>{tb['trades']}</td></tr>"
             f"<tr><th>trade win rate</th><td>{S.pct(ta['win_rate'])}</td>"
             f"<td>{S.pct(tb['win_rate'])}</td></tr>"
             f"<tr><th>signal IC (all)</th><td>{S.fmt(a['signal_ic'].get('all'))}</td>"
             f"<td>{S.fmt(b['signal_ic'].get('all'))}</td></tr>"
             f"<tr><th>tiers</th><td>{S.json_text(summary['tiers'])}</td>"
             f"<td>{S.json_text(ch['tiers'])}</td></tr>"
             "<tr><th>why (top sizing reasons)</th>"
             f"<td>{_reasons(prod_reasons)}</td>"
             f"<td>{_reasons(list(ch['sizing_reasons'].items()))}</td></tr>")
    return f"""<h2 id="challenger">Production vs challenger (shadow book)</h2>
<p>The challenger is signal candidate <b>{html.escape(ch['candidate'])}</b>, which is not in
production: its walk-forward gates kept it out, or it passed them and awaits its forward
evidence. It traded the same market events in a shadow book (namespace
<code>{html.escape(ch['namespace'])}</code>) on its own paper account; it never reached a venue.
A replay is shown as evidence but does not count toward promotion: only paper and live shadow
days do (<code>tm models promote-ready</code>, <code>tm models promote</code>).</p>
<table class="vs compare">{head}{rows}</table>
{_chart("chart-compare", "Equity: production vs challenger")}
<div class="chart small" id="chart-compare-drawdown"></div>
{_chart("chart-challenger-positions", "Challenger: position per instrument")}
{_chart("chart-challenger-tiers", "Challenger: sizing tiers")}"""


def _reasons(pairs: list) -> str:
    return "<br>".join(f"{n}× {html.escape(r)}" for r, n in pairs) or S.DASH


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;
max-width:1200px;padding:0 1.5em;color:#212529;line-height:1.45}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #dee2e6;padding-bottom:.2em}
h3{margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.6em 0;font-size:14px}
td,th{border:1px solid #dee2e6;padding:4px 9px;text-align:right;white-space:nowrap}
th{background:#f8f9fa;font-weight:600}tbody th{text-align:left}
table.facts th,table.facts td{text-align:left;white-space:normal}
table.models th,table.models td{text-align:left}
.why{white-space:normal;display:inline-block;max-width:34em;text-align:left}
table.compare td{white-space:normal;max-width:30em;text-align:left}
.pos{color:#2b8a3e}.neg{color:#c92a2a}.warn{color:#c92a2a;font-weight:600}
.scroll{max-height:520px;overflow:auto;border:1px solid #dee2e6;display:inline-block;max-width:100%}
.scroll table{margin:0}.scroll thead th{position:sticky;top:0}
.banner{background:#fff9db;border:1px solid #fcc419;border-radius:6px;padding:.6em 1.2em;
margin:1em 0 1.4em;font-size:15px}.banner h2{margin:.2em 0 .4em;border:0;font-size:18px}
.banner .line{white-space:pre-wrap}
.chart{width:100%;margin:.4em 0 1em}.note{color:#495057;font-size:13px;margin:.2em 0}
.legend-swatch{display:inline-block;width:.9em;height:.9em;vertical-align:middle;
margin:0 .25em 0 .8em;border:1px solid #ced4da}
.uplot .u-legend{font-size:13px}"""

REGIME_NOTE = ("Background: BTC regime (<span class=legend-swatch style='background:#d3f9d8'>"
               "</span>Bull <span class=legend-swatch style='background:#f1f3f5'></span>Neutral "
               "<span class=legend-swatch style='background:#ffe8cc'></span>Bear "
               "<span class=legend-swatch style='background:#ffc9c9'></span>Crisis); dashed "
               "lines: circuit-breaker transitions (red: opened). Drag to zoom, double-click to "
               "reset; hover for values. Times in UTC.")


def render(summary: dict, charts: dict, prod_reasons: list) -> str:
    """The page (one string, no external resource)."""
    meta, st = summary["meta"], summary["stats"]
    breaker = (S.table(summary["breaker_events"], ["at_utc", "from", "to", "trigger", "reason"],
                       heads={"at_utc": "at (UTC)"})
               if summary["breaker_events"] else "<p>No breaker transitions.</p>")
    compare = "" if "challenger" not in summary else _compare(summary, prod_reasons)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trade-Matrix run report</title>
<style>{_asset("vendor", "uPlot.min.css")}</style><style>{CSS}</style></head><body>
<h1>Trade-Matrix run report</h1>
<p>Generated {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}. Every time in this report is UTC.
Out-of-sample: the replay window lies after the models' training window.</p>
{S.banner(meta)}
{S.run_facts(meta)}
<h2 id="statistics">Strategy vs buy and hold</h2>{S.strategy_vs_buy_and_hold(st)}
<p class="note">Buy and hold: the initial equity split equally over the instruments at the first
bar's close and held, without costs. Annualised over 6 bars a day × 365 days.</p>
{_chart("chart-equity", "Equity vs buy and hold", REGIME_NOTE)}
<div class="chart small" id="chart-drawdown"></div>
<h3>Per instrument</h3>{S.per_instrument(st)}
<p class="note">Signal IC during the run (Spearman of P(up) vs the forward return over 6 bars):
{S.signal_ic(st["signal_ic"])}</p>
<h2 id="trades">Trades</h2>
<p class="note">A trade runs from a position leaving zero to its return to zero (a flip closes one
and opens the next). PnL = price PnL − fees − funding, in USDT; a trade still open is marked at
the last mark. The list is also in <a href="trades.csv">trades.csv</a>.</p>
{S.trade_statistics(summary["trades"])}
{S.trade_list(summary["trades"]["list"])}
<h2 id="monthly">Monthly returns</h2>{S.monthly_returns(st.get("monthly_returns", []))}
<h2 id="models">Models and their gates</h2>{S.models(meta)}
{compare}
<h2 id="positions">Positions and sizing</h2>
{_chart("chart-positions", "Position per instrument", "Signed notional as a fraction of equity.")}
{_chart("chart-tiers", "Cascade tier of each sizing decision")}
<p>Tier counts: {S.json_text(summary["tiers"])}; regimes: {S.json_text(summary["regimes"])}</p>
<h2 id="breaker">Circuit breaker</h2>{breaker}
<h2 id="latency">Latency (ms, from the bar's publication)</h2>
{S.latency(summary["latency_ms"], summary.get("latency"))}
<h2 id="stale">Stale inputs</h2>{S.stale_inputs(summary["stale_inputs"])}
<h2 id="rejections">Rejections</h2>{S.counts(summary["rejections"], "reason")}
<p>Dead letters: {S.json_text(summary["dead_letters"])}</p>
<script type="application/json" id="tm-chart-data">{_script_json(charts)}</script>
<script>{_asset("vendor", "uPlot.iife.min.js")}</script>
<script>{_asset("report.js")}</script>
</body></html>"""


def write_report(rec: RunRecord, out_dir: Path, *, initial_equity: float, meta: dict,
                 challenger: Any = None) -> dict:
    """Write ``report.html``, ``report.json`` and ``trades.csv`` to ``out_dir``; returns the
    summary (as written to report.json). ``challenger``: a shadow book's run, shown side by side
    with production. ``meta["banner"]`` (lines) opens the page; ``meta["models"]``
    (:meth:`tm_app.explain.ModelsInUse.as_meta`) fills "Models and their gates"."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = strict(build_summary(rec, initial_equity=initial_equity, meta=meta,
                                   challenger=challenger))
    (out_dir / "report.json").write_text(dumps_strict(summary, indent=2))
    write_csv(summary["trades"]["list"], out_dir / "trades.csv")
    charts = chart_data(rec, initial_equity, challenger)
    prod_reasons = Counter(z.reason[:90] for z in rec.sized).most_common(3)
    (out_dir / "report.html").write_text(render(summary, charts, prod_reasons), encoding="utf-8")
    return summary
