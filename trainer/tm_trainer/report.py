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
