"""One self-contained HTML report (charts inline as PNG) plus the numbers as JSON."""

from __future__ import annotations

import base64
import html
import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tm_app.record import RunRecord
from tm_app.report.charts import equity_chart, positions_chart, tiers_chart
from tm_app.stats import percentiles, run_stats


def build_summary(rec: RunRecord, *, initial_equity: float, meta: dict) -> dict:
    """The report's numbers (what report.json holds)."""
    stats = run_stats(rec, initial_equity)
    lat = {k: percentiles(v) for k, v in rec.latencies_ms().items()}
    return {
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


def write_report(rec: RunRecord, out_dir: Path, *, initial_equity: float, meta: dict) -> dict:
    """Write ``report.html`` and ``report.json`` to ``out_dir``; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = build_summary(rec, initial_equity=initial_equity, meta=meta)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    st = summary["stats"]
    cols = ["scope", "total_return", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate",
            "turnover", "fees", "funding", "buy_and_hold"]
    rows = [{"scope": "total", **st["total"]}] + [{"scope": k, **v} for k, v in st["per_instrument"].items()]
    lat_rows = [{"hop": k, **v} for k, v in summary["latency_ms"].items()]
    meta_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in meta.items())
    ic = st["signal_ic"]
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>Trade-Matrix run report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#212529}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #dee2e6;padding:4px 8px;text-align:right}}
th{{background:#f8f9fa}}img{{max-width:100%}}h2{{margin-top:1.6em}}</style></head><body>
<h1>Trade-Matrix run report</h1>
<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC}. Out-of-sample: the replay window
lies after the models' training window.</p>
<table>{meta_rows}</table>
<h2>Statistics</h2>{_table(rows, cols)}
<p>Signal IC during the run (Spearman of P(up) vs forward return): {html.escape(json.dumps(ic))}</p>
<h2>Equity and drawdown</h2>{_img(equity_chart(rec, initial_equity), "equity")}
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
