"""Human-readable OOS report: a rich table, Markdown, and rich progress bars."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def _f(x, nd: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def summary_rows(summary: dict) -> list[tuple[str, str, str, str, str]]:
    """(scope, IC, hit rate, Sharpe, return) rows: overall model, overall baseline, per instrument."""
    rows = [("ALL model (mean of pooled ICs)", _f(summary.get("mean_ic")),
             _f(summary.get("hit_rate")), _f(summary.get("sharpe"), 2), _f(summary.get("return"))),
            ("ALL momentum baseline", _f(summary.get("baseline_mean_ic")),
             _f(summary.get("baseline_hit_rate")), _f(summary.get("baseline_sharpe"), 2),
             _f(summary.get("baseline_return")))]
    for sym, m in summary.get("instruments", {}).items():
        rows.append((f"{sym} model", _f(m["ic"]), _f(m["hit_rate"]), _f(m["sharpe"], 2),
                     _f(m["return"])))
        rows.append((f"{sym} baseline", _f(m["baseline_ic"]), _f(m["baseline_hit_rate"]),
                     _f(m["baseline_sharpe"], 2), _f(m["baseline_return"])))
    return rows


def rich_table(report: dict, title: str = "Walk-forward OOS") -> Table:
    s = report["summary"]
    w = report.get("windows") or []
    span = f" {_day(w[0]['test_start_ms'])} → {_day(w[-1]['test_end_ms'])}" if w else ""
    t = Table(title=f"{title}: {s['n_windows']} windows, {s['n_oos_bars']} bars{span}")
    for col in ("scope", "IC", "hit rate", "Sharpe (net)", "sum return"):
        t.add_column(col, justify="left" if col == "scope" else "right")
    for row in summary_rows(s):
        t.add_row(*row)
    if s.get("mean_window_ic") is not None and s.get("n_windows", 0) > 1:
        t.caption = (f"mean per-window IC {_f(s['mean_window_ic'])} (t {_f(s.get('ic_t_stat'), 2)}), "
                     f"baseline {_f(s.get('baseline_mean_window_ic'))}: biased for persistent "
                     "predictors, reported only")
    return t


def markdown(report: dict, gate_line: str = "") -> str:
    """The summary table as Markdown."""
    s = report["summary"]
    head = f"OOS: {s['n_windows']} windows, {s['n_oos_bars']} bars; mean per-window IC " \
        f"{_f(s.get('mean_window_ic'))} (t {_f(s.get('ic_t_stat'), 2)}; biased, not gated), " \
        f"baseline {_f(s.get('baseline_mean_window_ic'))}"
    lines = [head, "",
             "| scope | IC | hit rate | Sharpe (net) | sum return |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {' | '.join(r)} |" for r in summary_rows(s)]
    extra = honest_lines(report)
    if extra:
        lines += [""] + [f"- {x}" for x in extra]
    if gate_line:
        lines += ["", gate_line]
    return "\n".join(lines)


@contextmanager
def progress_bars(n_windows: int, n_instruments: int, *, console: Console | None = None,
                  enabled: bool = True) -> Iterator:
    """A ``progress(event, k)`` callback backed by rich bars (windows, final models, regimes)."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console or Console(stderr=True),
                  transient=False) as prog:
        tasks = {"window": prog.add_task("walk-forward windows", total=n_windows),
                 "final": prog.add_task("final models (instruments)", total=n_instruments),
                 "regime": prog.add_task("regime HMMs (instruments)", total=n_instruments)}

        def cb(event: str, _k: int) -> None:
            if event in tasks:
                prog.advance(tasks[event])

        yield cb


def _pct(x) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}%"


def honest_lines(report: dict) -> list[str]:
    """The honest gates' numbers, the calibration with its reliability curve, how often each
    cascade tier's confidence is reached out of sample (and which never is), and Boruta."""
    h = report.get("honest")
    if not h:
        return []
    d = report.get("deflated_sharpe") or {}
    t, c = h["timing"], h["consistency"]
    lines = [f"deflated Sharpe {_f(d.get('dsr'))} over {d.get('n_trials', '?')} trial(s) on this "
             f"data (SR0 per bar {_f(d.get('sr0_bar'))}); timing {_f(t['return'])} "
             f"(t {_f(t['t_stat'], 2)}, beyond a constant exposure {_f(t['exposure'], 2)}); "
             f"positive in {_f(c['positive_share'], 2)} of {c['periods']} sub-periods "
             f"({', '.join(_f(x) for x in c['returns'])})"]
    cal = h["calibration"]
    flat = " (OOS slope <= 0: calibrated to the base rate, no usable confidence)" \
        if cal.get("flat") else ""
    lines.append(f"calibration (Platt, fitted on {cal.get('n', 0)} OOS predictions; the curve "
                 "and the reach below use the same predictions, 2 parameters fitted on them): "
                 f"p = sigmoid({cal['a']:.4f} * raw + {cal['b']:.4f}){flat}")
    lines.append("reliability (calibrated p bin: n, mean p, observed up share): " + "; ".join(
        f"[{b['lo']:.1f},{b['hi']:.1f}) {b['n']}, {b['mean_p']:.3f}, {b['observed']:.3f}"
        for b in h["reliability"]))
    reach = h["threshold_reach"]
    lines.append("tier thresholds reached out of sample: " + "; ".join(
        f"{k} (confidence >= {v['threshold']:.2f}) {_pct(v['share'])} of bars"
        for k, v in reach.items()))
    fwd = h.get("threshold_reach_forward")
    if fwd:
        lines.append("the same with a calibration fitted on earlier OOS blocks only (forward): "
                     + "; ".join(f"{k} {_pct(v['share'])}" for k, v in fwd.items()))
    if h["unreachable_tiers"]:
        lines.append("UNREACHABLE for this model out of sample: " + ", ".join(
            f"{k} (confidence >= {reach[k]['threshold']:.2f})" for k in h["unreachable_tiers"]))
    for sym, b in (report.get("boruta") or {}).items():
        conf = ", ".join(b["confirmed"]) if b["confirmed"] else "NOTHING (Boruta confirmed no feature)"
        lines.append(f"Boruta {sym}: confirmed {conf}; filled by ranking: "
                     f"{', '.join(b['filled_by_ranking']) or 'none'}")
    return lines
