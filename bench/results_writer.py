"""Writing a benchmark run's results: ``results.json`` (everything, raw) and ``results.md`` (the
table of figures with the machine's load), into the run's own folder under the ignored
``bench/out/``, and ``bench/out/latest`` pointing at the newest run.

Results are generated, never committed beside the source; a run quoted in the docs is copied
into ``docs/bench/`` with a header saying which run it was.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

LATEST = "latest"


def run_dir_name(when: datetime) -> str:
    """The folder of a run started at ``when`` (UTC): ``20261122T014151Z``."""
    return when.strftime("%Y%m%dT%H%M%SZ")


def fmt(v: float | None) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"



NOTES = (
    ("- Latencies from bar close are measured from the bar's publication by ingest (its "
    "`ts_init`) to each event's `ts_init`, in a lockstep replay against the exchange sim."),
    ("- The mesh, backtest and main-command runs train a model registry with "
    "`python -m tm_trainer --no-publish --fast`; for mesh and backtest the signal candidate is "
    "put in production even where its gates refuse it, and the cascade thresholds are lowered "
    "(`bench/_benchlib.py` TRADING_ENV) so that the window trades."),
    "- Peak RSS is VmHWM from /proc/<pid>/status (ingest: read while it runs).",
)


def markdown(doc: dict) -> str:
    m = doc["machine"]
    dirty = " (working tree had uncommitted changes)" if doc["git_dirty"] else ""
    mode = "quick (smoke run, short windows)" if doc["quick"] else "full"
    lines = [
        "# Trade-Matrix benchmark results",
        "",
        f"- run: {doc['timestamp']} ({doc['wall_s']:.0f} s), git `{doc['git_commit']}`{dirty}",
        f"- machine: {m['cpu_count']} CPUs, Python {m['python']}, {m['platform']}",
        (f"- load average (1/5/15 min): start {doc['loadavg_start']}, end {doc['loadavg_end']}"
         " — the cores are shared, so high load means pessimistic numbers"),
        f"- mode: {mode}; mesh window: {doc['mesh_window']}; benches: {', '.join(doc['benches'])}",
        "",
        "| bench | figure | value | target | status | load 1 min (start → end) | note |",
        "|---|---|---:|---|---|---|---|",
    ]
    for f in doc["figures"]:
        b = doc["benches"][f["bench"]]
        load = f"{b['loadavg_start'][0]:.2f} → {b['loadavg_end'][0]:.2f}"
        val = fmt(f["value"]) + (f" {f['unit']}" if f["value"] is not None and f["unit"] else "")
        note = f["note"].replace("|", "\\|")
        lines.append(f"| {f['bench']} | {f['name']} | {val} | {f['target_text']} | {f['status']} | "
                     f"{load} | {note} |")
    failed = [n for n, b in doc["benches"].items() if b["status"] != "ok"]
    met = sum(f["status"] == "met" for f in doc["figures"])
    targeted = sum(f["target"] is not None for f in doc["figures"])
    lines += ["", f"Targets met: {met} of {targeted}. Failed benches: {', '.join(failed) or 'none'}.",
              "", "Notes:", *NOTES, f"- Raw outputs and logs: `{doc['out_dir']}/<bench>.json` and `.log`."]
    return "\n".join(lines) + "\n"


def write_results(doc: dict, results_dir: Path) -> str:
    """Write ``results.json`` and ``results.md`` of ``doc`` into ``results_dir``; the Markdown."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    md = markdown(doc)
    (results_dir / "results.md").write_text(md)
    return md


def point_latest(out_root: Path, run_dir: Path) -> Path:
    """Make ``<out_root>/latest`` the newest run: a relative symlink to ``run_dir``, or a copy
    where links cannot be made. Returns the ``latest`` path."""
    latest = out_root / LATEST
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.is_dir():
        shutil.rmtree(latest)
    try:
        latest.symlink_to(os.path.relpath(run_dir, out_root), target_is_directory=True)
    except OSError:
        shutil.copytree(run_dir, latest)
    return latest
