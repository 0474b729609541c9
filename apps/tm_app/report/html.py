"""One self-contained HTML report (charts inline as PNG) plus the numbers as JSON."""

from __future__ import annotations

import base64
import html
import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tm_app.record import RunRecord
from tm_app.report.charts import compare_chart, equity_chart, positions_chart, tiers_chart
from tm_app.stats import percentiles, run_stats


def book_summary(rec: RunRecord, *, initial_equity: float) -> dict:
    """The numbers of one book (production or a challenger): statistics, tiers, counts."""
    return {"stats": run_stats(rec, initial_equity),
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


def build_summary(rec: RunRecord, *, initial_equity: float, meta: dict,
                  challenger: Any = None) -> dict:
    """The report's numbers (what report.json holds). ``challenger``: a shadow book's run
    (``candidate``, ``namespace``, ``record``), summarised under ``"challenger"``. ``meta``
    gets :data:`INTRABAR_KEY` from its ``mode`` unless the caller said (paper does)."""
    meta = {**meta,
            INTRABAR_KEY: meta.get(INTRABAR_KEY) or intrabar_marks(str(meta.get("mode", "")))}
    stats = run_stats(rec, initial_equity)
    lat = {k: percentiles(v) for k, v in rec.latencies_ms().items()}
    extra = {} if challenger is None else {"challenger": {
        "candidate": challenger.candidate, "namespace": challenger.namespace,
        "label": f"challenger {challenger.candidate} (shadow book, paper)",
        **book_summary(challenger.record, initial_equity=initial_equity)}}
    return {**extra,
        "meta": meta,
        "stats": stats,
        "tiers": dict(Counter(z.tier for z in rec.sized)),
        "regimes": dict(Counter(r.label for r in rec.regimes)),
        "breaker_events": [{"at_ms": b.at_ms, "from": b.from_state, "to": b.to_state,
                            "trigger": b.trigger, "reason": b.reason} for b in rec.breaker],
        "rejections": dict(Counter(r.reason.split(":")[0] for r in rec.rejections)),
        "latency_ms": lat,
        "dead_letters": {k: v for k, v in rec.dead_letters.items() if v},
        "counts": {"bars": len(rec.bars), "signals": len(rec.signals), "orders": len(rec.orders),
                   "fills": len(rec.fills), "snapshots": len(rec.snapshots)},
    }


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"
    return html.escape(str(v))


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


COMPARE_ROWS = [("total return", "total_return", True), ("Sharpe", "sharpe", False),
                ("max drawdown", "max_drawdown", True), ("final equity", "final_equity", False),
                ("orders", "orders", False), ("fees", "fees", False),
                ("turnover", "turnover", False)]


def _reasons(pairs: list) -> str:
    return "<br>".join(f"{n}× {html.escape(r)}" for r, n in pairs) or "–"


def _compare(summary: dict, challenger: Any, initial_equity: float, prod: RunRecord) -> str:
    """The side-by-side section: production and the challenger, clearly labelled."""
    ch = summary["challenger"]
    a, b = summary["stats"], ch["stats"]

    def cell(v: Any, pct: bool) -> str:
        return _fmt(v * 100) + " %" if pct and isinstance(v, float) and v == v else _fmt(v)
    head = ("<tr><th></th><th>production</th>"
            f"<th>{html.escape(ch['label'])}</th></tr>")
    rows = "".join(f"<tr><th>{n}</th><td>{cell(a['total'].get(k), p)}</td>"
                   f"<td>{cell(b['total'].get(k), p)}</td></tr>" for n, k, p in COMPARE_ROWS)
    rows += (f"<tr><th>signal IC (all)</th><td>{_fmt(a['signal_ic'].get('all', float('nan')))}"
             f"</td><td>{_fmt(b['signal_ic'].get('all', float('nan')))}</td></tr>"
             f"<tr><th>tiers</th><td>{html.escape(json.dumps(summary['tiers']))}</td>"
             f"<td>{html.escape(json.dumps(ch['tiers']))}</td></tr>"
             "<tr><th>why (top sizing reasons)</th>"
             f"<td>{_reasons(Counter(z.reason[:90] for z in prod.sized).most_common(3))}</td>"
             f"<td>{_reasons(list(ch['sizing_reasons'].items()))}</td></tr>")
    return f"""<h2>Production vs challenger (shadow book)</h2>
<p>The challenger is signal candidate <b>{html.escape(ch['candidate'])}</b>, which the promotion
gates kept out of production. It traded the same market events in a shadow book (namespace
<code>{html.escape(ch['namespace'])}</code>) on its own paper account; it never reached a venue.
A replay is shown as evidence but does not count toward promotion: only paper and live shadow
days do (<code>tm models promote</code>).</p>
<table>{head}{rows}</table>
{_img(compare_chart(prod, challenger.record, initial_equity, ch['candidate']), "production vs challenger")}
<h3>Challenger: position per instrument</h3>{_img(positions_chart(challenger.record), "challenger positions")}
<h3>Challenger: sizing tiers</h3>{_img(tiers_chart(challenger.record), "challenger tiers")}"""


def write_report(rec: RunRecord, out_dir: Path, *, initial_equity: float, meta: dict,
                 challenger: Any = None) -> dict:
    """Write ``report.html`` and ``report.json`` to ``out_dir``; returns the summary.
    ``challenger``: a shadow book's run, shown side by side with production."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = build_summary(rec, initial_equity=initial_equity, meta=meta, challenger=challenger)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    st = summary["stats"]
    cols = ["scope", "total_return", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate",
            "turnover", "fees", "funding", "buy_and_hold"]
    rows = [{"scope": "total", **st["total"]}] + [{"scope": k, **v} for k, v in st["per_instrument"].items()]
    lat_rows = [{"hop": k, **v} for k, v in summary["latency_ms"].items()]
    meta_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>"
                        for k, v in summary["meta"].items() if k not in ("banner", "models"))
    banner = "".join(f"<div>{html.escape(line)}</div>" for line in meta.get("banner", []))
    banner = f'<div class="banner">{banner}</div>' if banner else ""
    ic = st["signal_ic"]
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>Trade-Matrix run report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#212529}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #dee2e6;padding:4px 8px;text-align:right}}
th{{background:#f8f9fa}}img{{max-width:100%}}h2{{margin-top:1.6em}}
.banner{{background:#fff9db;border:1px solid #fab005;padding:.8em 1em;margin:1em 0;white-space:pre-wrap}}</style></head><body>
<h1>Trade-Matrix run report</h1>
<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC}. Out-of-sample: the replay window
lies after the models' training window.</p>
{banner}
<table>{meta_rows}</table>
<h2>Statistics</h2>{_table(rows, cols)}
<p>Signal IC during the run (Spearman of P(up) vs forward return): {html.escape(json.dumps(ic))}</p>
<h2>Equity and drawdown</h2>{_img(equity_chart(rec, initial_equity), "equity")}
{"" if challenger is None else _compare(summary, challenger, initial_equity, rec)}
<h2>Positions</h2>{_img(positions_chart(rec), "positions")}
<h2>Sizing tiers</h2>{_img(tiers_chart(rec), "tiers")}
<p>Tier counts: {html.escape(json.dumps(summary["tiers"]))}; regimes: {html.escape(json.dumps(summary["regimes"]))}</p>
<h2>Circuit breaker</h2>{_table(summary["breaker_events"], ["at_ms", "from", "to", "trigger", "reason"])
                         if summary["breaker_events"] else "<p>No breaker transitions.</p>"}
<h2>Latency (ms, from the bar's publication)</h2>{_table(lat_rows, ["hop", "n", "p50", "p90", "p99", "max"])}
<h2>Rejections</h2><p>{html.escape(json.dumps(summary["rejections"]))}</p>
<p>Dead letters: {html.escape(json.dumps(summary["dead_letters"]))}</p>
</body></html>"""
    (out_dir / "report.html").write_text(doc)
    return summary
