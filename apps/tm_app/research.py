"""``tm research``: the walk-forward of every declared signal family, every trial registered, one
report (HTML + JSON) with a row per candidate.

Candidates: the built-in family and every family registered in
:data:`tm_quant.families.FAMILIES` (``--families`` narrows the list). Each runs the same
:func:`tm_trainer.pipeline.train` as ``tm train --family`` (purged walk-forward, the same costs
and gates, no regime models) and is registered as a candidate in the model registry (never
promoted here: ``tm models promote`` does that, with forward evidence). Trials accumulate: each
candidate sees the ones registered before it on the same data (:mod:`tm_trainer.honest`), so its
deflated Sharpe counts them.

A row: family, version, horizon (bars), mean IC and its t statistic at that horizon (the pooled
OOS IC over ``n`` OOS bars per instrument counts ``n / horizon`` independent labels:
t = IC·sqrt((m − 2)/(1 − IC²)) with m the sum over instruments), net Sharpe, deflated Sharpe and
the trial count, the timing component (return beyond a constant exposure of the average
position) and its t, turnover (position changes per bar), the share of positive sub-periods, the
net return per year and per instrument, the gate verdict with its reasons.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 200)   # a log keeps whole cells


def candidates(selected: str | None) -> tuple[str, ...]:
    """``--families`` (comma-separated) or every known family (built-in first).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    from tm_quant import families

    known = families.known()
    if selected is None or selected.strip() in ("", "all"):
        return known
    names = tuple(dict.fromkeys(n.strip() for n in selected.split(",") if n.strip()))
    for n in names:
        if n not in known:
            families.get(n)                         # UnknownFamily lists the known names
    return names


def _r(x: Any, nd: int = 6) -> float | None:
    return round(float(x), nd) if isinstance(x, (int, float)) and math.isfinite(x) else None


def row_of(result: Any, horizon_bars: int) -> dict[str, Any]:
    """One report row from a :class:`tm_trainer.pipeline.TrainResult`."""
    from tm_quant.ic import ic_t_stat

    rep = result.report
    s, h, d = rep["summary"], rep["honest"], rep["deflated_sharpe"]
    per = s["instruments"]
    m = sum((v.get("n") or 0) for v in per.values()) // max(1, horizon_bars)
    ic = s["mean_ic"]
    bars = max(1, s["n_oos_bars"])
    turnover = [v["turnover"] for v in h["instruments"].values() if v["turnover"] is not None]
    return {
        "family": result.family, "version": result.signal_version, "horizon_bars": horizon_bars,
        "ic": ic, "ic_t": None if ic is None else _r(ic_t_stat(ic, m), 3), "ic_labels": m,
        "sharpe": s["sharpe"], "dsr": d["dsr"], "n_trials": d["n_trials"],
        "timing_return": h["timing"]["return"], "timing_t": h["timing"]["t_stat"],
        "turnover_per_bar": _r(sum(turnover) / len(turnover) / bars) if turnover else None,
        "positive_share": h["consistency"]["positive_share"],
        "return": s["return"], "by_year": h["by_year"],
        "instruments": {sym: {"return": v["return"], "timing_return": v["timing_return"],
                              "by_year": v["by_year"], "ic": per.get(sym, {}).get("ic")}
                        for sym, v in h["instruments"].items()},
        "unreachable_tiers": h["unreachable_tiers"],
        "calibration": {k: h["calibration"].get(k) for k in ("a", "b", "flat")},
        "boruta": {sym: {"confirmed": b["confirmed"], "filled_by_ranking": b["filled_by_ranking"]}
                   for sym, b in (rep.get("boruta") or {}).items()},
        "gate_passed": result.gate_passed, "reasons": result.reasons,
    }


def _f(x: Any, nd: int = 4) -> str:
    return "-" if not isinstance(x, (int, float)) or isinstance(x, bool) else f"{x:.{nd}f}"


def table(rows: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title)
    for c in ("family", "IC", "IC t", "Sharpe", "DSR (trials)", "timing (t)", "turnover/bar",
              "positive share", "per year", "gates"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["family"], _f(r["ic"]), _f(r["ic_t"], 2), _f(r["sharpe"], 2),
                  f"{_f(r['dsr'], 3)} ({r['n_trials']})",
                  f"{_f(r['timing_return'])} ({_f(r['timing_t'], 2)})",
                  _f(r["turnover_per_bar"], 3), _f(r["positive_share"], 2),
                  ", ".join(f"{y} {_f(v)}" for y, v in r["by_year"].items()),
                  "PASS" if r["gate_passed"] else "refused")
    return t


def markdown(rows: list[dict[str, Any]]) -> str:
    """The research table as Markdown (README and the HTML report use it)."""
    out = ["| family | horizon | IC | IC t | net Sharpe | DSR (trials) | timing (t) | "
           "turnover/bar | positive share | per year | per instrument | gates |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['family']} | {r['horizon_bars']} | {_f(r['ic'])} | {_f(r['ic_t'], 2)} | "
            f"{_f(r['sharpe'], 2)} | {_f(r['dsr'], 3)} ({r['n_trials']}) | "
            f"{_f(r['timing_return'])} ({_f(r['timing_t'], 2)}) | "
            f"{_f(r['turnover_per_bar'], 3)} | {_f(r['positive_share'], 2)} | "
            + ", ".join(f"{y}: {_f(v)}" for y, v in r["by_year"].items()) + " | "
            + ", ".join(f"{s}: {_f(v['return'])}" for s, v in r["instruments"].items()) + " | "
            + ("PASS" if r["gate_passed"] else "refused") + " |")
    return "\n".join(out)


def write_html(path: Path, doc: dict[str, Any]) -> None:
    """A self-contained page: the table, then each candidate's reasons and reach warnings."""
    e = html.escape
    rows = doc["rows"]
    head = ("family", "version", "horizon", "IC", "IC t", "net Sharpe", "DSR", "trials",
            "timing", "timing t", "turnover/bar", "positive share", "per year", "per instrument",
            "gates")
    body = []
    for r in rows:
        cells = [r["family"], r["version"], str(r["horizon_bars"]), _f(r["ic"]),
                 _f(r["ic_t"], 2), _f(r["sharpe"], 2), _f(r["dsr"], 3), str(r["n_trials"]),
                 _f(r["timing_return"]), _f(r["timing_t"], 2), _f(r["turnover_per_bar"], 3),
                 _f(r["positive_share"], 2),
                 "; ".join(f"{y}: {_f(v)}" for y, v in r["by_year"].items()),
                 "; ".join(f"{s}: {_f(v['return'])}" for s, v in r["instruments"].items()),
                 "PASS" if r["gate_passed"] else "refused: " + "; ".join(r["reasons"])]
        body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    notes = [f"<li>{e(r['family'])}: confidence never reaches "
             f"{e(', '.join(r['unreachable_tiers']))} out of sample</li>"
             for r in rows if r["unreachable_tiers"]]
    notes += [f"<li>{e(r['family'])} {e(sym)}: Boruta confirmed "
              f"{e(', '.join(b['confirmed']) or 'nothing')}; filled by ranking: "
              f"{e(', '.join(b['filled_by_ranking']) or 'none')}</li>"
              for r in rows for sym, b in r["boruta"].items()]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tm research</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 6px;font-size:13px;vertical-align:top}}</style></head>
<body><h1>Research: {len(rows)} candidates, {sum(r['gate_passed'] for r in rows)} passing</h1>
<p>{e(doc['data'])}. Out-of-sample walk-forward ({doc['windows']} windows, purged); costs
included. IC t at the candidate's horizon (non-overlapping labels); DSR = deflated Sharpe ratio
over the trials registered on the same data; timing = return beyond a constant exposure equal to
the average position; positive share = sub-periods with a positive net return.</p>
<table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{''.join(body)}</table>
<ul>{''.join(notes)}</ul></body></html>"""
    path.write_text(page, encoding="utf-8")


async def run_research(cfg: Any, names: tuple[str, ...], settings: Any, out: Path, *,
                       show_progress: bool = True, say=typer.echo) -> dict[str, Any]:
    """Train, register and report every candidate in ``names`` (module docstring)."""
    from tm_common.models.bundle import Bundle
    from tm_trainer.cli import _registry
    from tm_trainer.pipeline import prior_trials_of, train
    from tm_trainer.registry_ops import record
    from tm_trainer.report import progress_bars

    registry, engine = await _registry(settings)
    rows = []
    try:
        for k, fam in enumerate(names):
            say(f"[{k + 1}/{len(names)}] {fam}: walk-forward ({cfg.n_windows} windows)")
            prior = prior_trials_of(await registry.list("signal"))
            with progress_bars(cfg.n_windows, len(cfg.instruments), enabled=show_progress) as cb:
                result = await asyncio.to_thread(train, cfg, cb, regime=False, family=fam,
                                                 prior_trials=prior)
            await record(registry, result, promote=False)
            horizon = int(Bundle.from_bytes(result.signal_bytes).manifest["horizon_bars"])
            rows.append(row_of(result, horizon))
            say(f"[{k + 1}/{len(names)}] {fam}: registered {result.signal_version} "
                f"({'PASS' if result.gate_passed else 'refused'})")
    finally:
        await engine.dispose()
    end = dt.datetime.fromtimestamp(cfg.train_end_ms / 1000, tz=dt.UTC)
    doc = {"data": f"{', '.join(cfg.instruments)} up to {end:%Y-%m-%d %H:%M} UTC",
           "windows": cfg.n_windows, "config": cfg.to_dict(), "rows": rows,
           "markdown": markdown(rows)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "research.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    write_html(out / "research.html", doc)
    return doc


def research(
    families: Annotated[str | None, typer.Option(
        help="Comma-separated families (default: every registered one).")] = None,
    instruments: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
    windows: Annotated[int | None, typer.Option(help="Walk-forward windows (default 40; "
                                                "4 with --fast).")] = None,
    train_end: Annotated[str | None, typer.Option(
        help="Training cut-off, YYYY-MM-DD or epoch ms (default 2025-01-01).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every candidate.")] = 7,
    fast: Annotated[bool, typer.Option("--fast", help="Reduced configuration.")] = False,
    history_dir: Annotated[Path | None, typer.Option(help="CSV history folder.")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default "
                                             "reports/research-<time>).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Walk-forward every declared signal family, register every trial, write research.html and
    research.json (one row per candidate)."""
    from tm_common.instruments import parse_symbols
    from tm_trainer.cli import _settings, fail, parse_time_ms, run_one_line
    from tm_trainer.config import DEFAULT_INSTRUMENTS, TrainConfig

    try:
        names = candidates(families)
        syms = parse_symbols(instruments or ",".join(DEFAULT_INSTRUMENTS))
        end: dict[str, Any] = {"train_end_ms": parse_time_ms(train_end)} if train_end else {}
        cfg = TrainConfig(instruments=syms, seed=seed, history_dir=history_dir, **end)
        if fast:
            cfg = cfg.fast()
        if windows is not None:
            cfg = replace(cfg, n_windows=windows)
    except (ValueError, typer.BadParameter) as e:
        fail(str(e), 2)
    folder = out or Path("reports") / f"research-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    doc = run_one_line(run_research(cfg, names, _settings(), folder, show_progress=progress))
    console.print(table(doc["rows"], f"research: {doc['data']}"))
    typer.echo(f"wrote {folder / 'research.html'} and {folder / 'research.json'}")
