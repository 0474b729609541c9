"""The HTML sections of the report, each from the summary (``report.json``'s numbers).
Everything shown is escaped; numbers are formatted here, never in the summary."""

from __future__ import annotations

import calendar
import html
import json
import math
import re
from typing import Any

from tm_app.report.trades import COLUMNS as TRADE_COLUMNS

DASH = "–"


def fmt(v: Any) -> str:
    """A cell: None/NaN → –, floats to 4 decimals below 10 and 2 above, text escaped."""
    if v is None:
        return DASH
    if isinstance(v, float):
        if not math.isfinite(v):
            return DASH
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"
    return html.escape(str(v))


def pct(v: Any, digits: int = 2) -> str:
    return DASH if not isinstance(v, (int, float)) or not math.isfinite(v) \
        else f"{v * 100:,.{digits}f} %"


def table(rows: list[dict], cols: list[str], *, heads: dict[str, str] | None = None,
          cell: Any = None, cls: str = "") -> str:
    """Rows × columns; ``heads`` renames columns, ``cell(col, value)`` formats a value."""
    heads = heads or {}
    cell = cell or (lambda c, v: fmt(v))
    head = "".join(f"<th>{html.escape(heads.get(c, c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(c, r.get(c))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def banner(meta: dict) -> str:
    """``meta["banner"]`` (lines: what traded and why, then the next steps; indentation kept)
    as the page's first box."""
    lines = meta.get("banner")
    if not lines:
        return ""
    if isinstance(lines, str):
        lines = lines.splitlines()
    body = "".join(f'<div class="line">{html.escape(str(x))}</div>' for x in lines)
    return f'<div class="banner"><h2 id="banner">What traded and why</h2>{body}</div>'


def run_facts(meta: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{fmt(v)}</td></tr>"
                   for k, v in meta.items() if k not in ("banner", "models"))
    return f'<table class="facts">{rows}</table>'


VS_ROWS = [("total return", "total_return", "pct"), ("CAGR", "cagr", "pct"),
           ("Sharpe", "sharpe", "num"), ("Sortino", "sortino", "num"),
           ("Calmar", "calmar", "num"), ("max drawdown", "max_drawdown", "pct"),
           ("volatility (annual)", "vol_annual", "pct"), ("final equity (USDT)", "final_equity", "num"),
           ("fees (USDT)", "fees", "num"), ("funding (USDT)", "funding", "num"),
           ("turnover (× mean equity)", "turnover", "num")]


def strategy_vs_buy_and_hold(stats: dict) -> str:
    """The strategy's and equal-weight buy and hold's statistics in one table."""
    a, b = stats["total"], stats.get("buy_and_hold", {})
    rows = "".join(
        f"<tr><th>{n}</th><td>{pct(a.get(k)) if kind == 'pct' else fmt(a.get(k))}</td>"
        f"<td>{pct(b.get(k)) if kind == 'pct' else fmt(b.get(k))}</td></tr>"
        for n, k, kind in VS_ROWS)
    return ('<table class="vs"><thead><tr><th></th><th>strategy</th>'
            f'<th>buy &amp; hold (equal weight)</th></tr></thead><tbody>{rows}</tbody></table>')


PER_INSTRUMENT = ["scope", "total_return", "sharpe", "max_drawdown", "pnl", "price_pnl", "fees",
                  "funding", "slippage", "win_rate", "bars_in_market", "turnover", "buy_and_hold"]
PER_HEADS = {"total_return": "return", "max_drawdown": "max DD", "pnl": "PnL (USDT)",
             "price_pnl": "price PnL", "slippage": "of which slippage",
             "win_rate": "bar win rate", "bars_in_market": "bars in market",
             "buy_and_hold": "buy & hold"}
PCT_COLS = {"total_return", "max_drawdown", "win_rate", "buy_and_hold", "return", "trade_win_rate"}


def per_instrument(stats: dict) -> str:
    """One row per instrument, then the total: PnL, fees, funding and returns add up to it
    (``tm_app.report.attribution``); a non-zero residual gets its own row."""
    rows = [{"scope": k, **v} for k, v in stats["per_instrument"].items()]
    tot = stats["total"]
    rows.append({"scope": "total", **{k: tot.get(k) for k in PER_INSTRUMENT[1:]},
                 "price_pnl": _sum(rows, "price_pnl"), "slippage": tot.get("slippage")})
    if tot.get("residual"):
        rows.append({"scope": "not attributed (reconciliation)", "pnl": tot["residual"]})
    return table(rows, PER_INSTRUMENT, heads=PER_HEADS,
                 cell=lambda c, v: pct(v) if c in PCT_COLS else fmt(v))


def _sum(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return sum(vals) if vals else None


TRADE_STAT_ROWS = [("closed trades", "trades", "int"), ("still open at the end", "open", "int"),
                   ("win rate (trades)", "win_rate", "pct"),
                   ("profit factor", "profit_factor", "num"),
                   ("expectancy (USDT per trade)", "expectancy", "num"),
                   ("average win (USDT)", "avg_win", "num"), ("average loss (USDT)", "avg_loss", "num"),
                   ("average holding (hours)", "avg_holding_hours", "hours"),
                   ("median holding (hours)", "median_holding_hours", "hours"),
                   ("best trade (USDT)", "best", "num"), ("worst trade (USDT)", "worst", "num"),
                   ("PnL of closed trades (USDT)", "total_pnl", "num")]


def trade_statistics(trades: dict) -> str:
    """Per-trade statistics: all instruments, then one column per instrument."""
    cols = [("all", trades["stats"])] + list(trades["per_instrument"].items())
    head = "".join(f"<th>{html.escape(n)}</th>" for n, _ in cols)

    def cell(st: dict, k: str, kind: str) -> str:
        v = st.get(k)
        if kind == "hours" and isinstance(v, float):
            return f"{v:,.1f}"
        return pct(v) if kind == "pct" else (str(v) if kind == "int" else fmt(v))
    rows = "".join(f"<tr><th>{n}</th>" + "".join(f"<td>{cell(st, k, kind)}</td>" for _, st in cols)
                   + "</tr>" for n, k, kind in TRADE_STAT_ROWS)
    note = ("" if not trades.get("unattributed_funding")
            else f"<p>Funding paid while no trade was open: {fmt(trades['unattributed_funding'])} USDT.</p>")
    return f'<table class="vs"><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>{note}'


TRADE_HEADS = {"entry_time_utc": "entry (UTC)", "exit_time_utc": "exit (UTC)",
               "entry_price": "entry avg", "exit_price": "exit avg", "pnl": "PnL (USDT)",
               "holding_hours": "held (h)", "fees": "fees", "funding": "funding"}


def trade_list(rows: list[dict]) -> str:
    if not rows:
        return "<p>No trades in this run.</p>"

    def cell(c: str, v: Any) -> str:
        if c == "pnl" and isinstance(v, float):
            return f'<span class="{"pos" if v > 0 else "neg"}">{fmt(v)}</span>'
        if c in ("entry_price", "exit_price", "qty") and isinstance(v, float):
            return f"{v:,.6g}" if abs(v) < 1000 else f"{v:,.2f}"
        if c in ("fees", "funding") and isinstance(v, float):
            return f"{v:,.2f}"
        if c == "holding_hours" and isinstance(v, float):
            return f"{v:,.1f}"
        if c == "exit_time_utc" and not v:
            return "open"
        return fmt(v)
    cols = [c for c in TRADE_COLUMNS if c != "status"]
    return (f'<div class="scroll">{table(rows, cols, heads=TRADE_HEADS, cell=cell, cls="trades")}'
            "</div>")


def monthly_returns(rows: list[dict]) -> str:
    """A year × month grid of returns, with the year's compounded return."""
    if not rows:
        return "<p>No equity snapshots.</p>"
    years: dict[int, dict[int, float]] = {}
    for r in rows:
        years.setdefault(int(r["year"]), {})[int(r["month"])] = r["return"]
    head = "".join(f"<th>{calendar.month_abbr[m]}</th>" for m in range(1, 13))

    def cell(v: float | None) -> str:
        if v is None or not math.isfinite(v):
            return "<td></td>"
        return f'<td class="{"pos" if v > 0 else "neg" if v < 0 else ""}">{pct(v)}</td>'
    body = ""
    for y, months in sorted(years.items()):
        year = math.prod(1 + v for v in months.values() if v is not None and math.isfinite(v)) - 1
        body += (f"<tr><th>{y}</th>" + "".join(cell(months.get(m)) for m in range(1, 13))
                 + f"{cell(year)}</tr>")
    return (f'<table class="months"><thead><tr><th></th>{head}<th>year</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


MODEL_COLS = ["kind", "version", "stage", "gate_passed", "mean_ic", "sharpe", "why"]
MODEL_HEADS = {"mean_ic": "OOS IC", "sharpe": "OOS Sharpe", "gate_passed": "gates"}


def models(meta: dict) -> str:
    """The models used (the registry's production version of each kind) and the newest signal
    candidate's gate results, from ``meta["models"]`` (:meth:`tm_app.explain.ModelsInUse.as_meta`:
    ``{"signal", "regime", "rl": version or None, "signal_candidate": {...} or None}``)."""
    m = meta.get("models")
    if not m:
        return ('<p class="warn">Model registry unavailable: the models this run used are not '
                "recorded (no registry for this run, or it could not be read).</p>")
    rows = [{"kind": k, "version": m.get(k) or "none in production",
             "stage": "production" if m.get(k) else DASH,
             "why": "trading flat" if k == "signal" and not m.get(k) else ""}
            for k in ("signal", "regime", "rl")]
    out = table(rows, MODEL_COLS, heads=MODEL_HEADS, cell=_model_cell, cls="models")
    cand = m.get("signal_candidate")
    if cand:
        out += ("<h3>Newest signal candidate and its gates</h3>"
                + table([{"kind": "signal", **cand}], MODEL_COLS, heads=MODEL_HEADS,
                        cell=_model_cell, cls="models"))
    return out


def _model_cell(c: str, v: Any) -> str:
    if c == "gate_passed":
        return DASH if v is None else ("passed" if v else '<span class="neg">refused</span>')
    if c == "why" and v:
        return f'<span class="why">{html.escape(str(v))}</span>'
    return fmt(v)


def signal_ic(ic: dict) -> str:
    """``{"BTCUSDT": 0.11, ..., "all": ...}`` → ``BTCUSDT 0.110 · … · all 0.012``."""
    return " · ".join(f"{html.escape(k)} {DASH if v is None else f'{v:+.3f}'}"
                      for k, v in ic.items()) or DASH


def counts(by: dict[str, int], what: str) -> str:
    """``{reason: n}`` as a table, most frequent first."""
    if not by:
        return "<p>None.</p>"
    merged: dict[str, int] = {}
    for k, n in by.items():             # "…, have 17" and "…, have 23": one row
        key = re.sub(r"\d+$", "…", k)
        merged[key] = merged.get(key, 0) + n
    rows = [{what: k, "count": n} for k, n in sorted(merged.items(), key=lambda kv: -kv[1])]
    return f'<div class="scroll">{table(rows, [what, "count"], cls="facts")}</div>'


#: A hop slower than this is not a latency: the bars of an in-process backtest carry no wall
#: time (ts_init 0), so "from the bar's publication" is undefined there.
PLAUSIBLE_LATENCY_MS = 3_600_000.0


NOT_MEASURED = "not measured (in-process)"


def latency_summary(lat: dict[str, dict]) -> tuple[dict[str, dict], str | None]:
    """(the percentiles per hop, None), or ({}, :data:`NOT_MEASURED`) when the run's bars carry
    no publication time (a hop slower than :data:`PLAUSIBLE_LATENCY_MS`): report.json then holds
    no made-up numbers."""
    if any((r.get("p50") or 0) > PLAUSIBLE_LATENCY_MS for r in lat.values()):
        return {}, NOT_MEASURED
    return lat, None


def latency(lat: dict[str, dict], note: str | None = None) -> str:
    lat, said = latency_summary(lat) if note is None else ({}, note)
    if said is not None:
        return (f"<p>Latency: {html.escape(said)}. Not measured in this run: its bars carry no "
                "publication time (an in-process backtest; the mesh replay, <code>tm demo</code>, "
                "measures it).</p>")
    rows = [{"hop": k, **v} for k, v in lat.items()]
    return table(rows, ["hop", "n", "p50", "p90", "p99", "max"])


def stale_inputs(stale: dict[str, dict]) -> str:
    """The stale side inputs of the run (``tm_app.report.stale``), or a line saying none was."""
    if not stale:
        return "<p>No input was stale: every signal had its DVOL and funding within their limits.</p>"
    rows = [{"input": k, **v, "instruments": ", ".join(v["instruments"])} for k, v in stale.items()]
    return ('<p class="warn">Some signals were made with a stale input (withheld from the model, '
            "confidence cut):</p>" +
            table(rows, ["input", "signals", "instruments", "first_utc", "last_utc",
                         "max_age_days", "limit_days"],
                  heads={"signals": "signals with it stale", "first_utc": "first (UTC)",
                         "last_utc": "last (UTC)", "max_age_days": "oldest age (days)",
                         "limit_days": "limit (days)"}))


def json_text(v: Any) -> str:
    return html.escape(json.dumps(v, default=str))
