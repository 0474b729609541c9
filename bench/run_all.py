"""Run every benchmark and collect their figures into an ignored run folder:
``bench/out/<UTC time>/results.json`` and ``results.md``, with ``bench/out/latest`` pointing at
the newest run (the writing is ``results_writer.py``, the figures of each bench ``figures.py``).

Each bench runs as its own subprocess (``python bench/<script> --json <run>/<name>.json``),
one after the other so that they do not compete for the cores; its output is shown with a
prefix and kept in ``<run>/<name>.log``. A bench that fails or times out is a row marked
``failed`` with its error, and this script exits 1 at the end. The machine's load average is
recorded before and after each bench (the numbers are only as good as the machine was quiet).
The sizer's walk-forward signal cache stays across runs in ``bench/out/cache``.

    .venv/bin/python bench/run_all.py                      # everything (make bench)
    .venv/bin/python bench/run_all.py --quick              # short windows: a smoke run
    .venv/bin/python bench/run_all.py --only mesh,backtest --mesh-window 200
    .venv/bin/python bench/run_all.py --list

Redis: ``TM_BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/0) for the benches that need one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from figures import (
    Figure,
    figs_backtest,
    figs_bus,
    figs_executor,
    figs_features,
    figs_image,
    figs_ingest,
    figs_journal,
    figs_main,
    figs_mesh,
    figs_risk,
    figs_signal,
    figs_sizer,
    figs_training,
)
from results_writer import point_latest, run_dir_name, write_results

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


# -- benches ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    figures: Callable[[dict], list[Figure]]
    timeout_s: float = 1800


def benches(mesh_window: str | None, quick: bool, cache_dir: Path) -> list[Bench]:
    mw = mesh_window or ("20" if quick else "full")
    return [
        Bench("bus", "bench_bus.py", (), ("-n", "300"), figs_bus),
        Bench("ingest", "bench_ingest.py", (), ("--bars", "200"), figs_ingest),
        Bench("features", "bench_features.py", (), ("--repeats", "1"), figs_features),
        Bench("signal", "bench_signal.py", (), (), figs_signal),
        Bench("sizer", "bench_sizer.py", ("--cache-dir", str(cache_dir)),
              ("--skip-train", "--decisions", "500"), figs_sizer, timeout_s=3600),
        Bench("risk", "bench_risk.py", (), ("--n", "500"), figs_risk),
        Bench("executor", "bench_executor.py", (), ("-n", "50"), figs_executor),
        Bench("journal", "bench_journal.py", (), ("--days", "30"), figs_journal),
        Bench("backtest", "bench_backtest.py", ("--window", "365"), ("--window", "10"), figs_backtest),
        Bench("mesh", "bench_mesh.py", ("--window", mw), ("--window", mw), figs_mesh,
              timeout_s=6 * 3600),
        Bench("main", "bench_main.py", (), ("--end", "2025-01-04"), figs_main),
        Bench("training", "bench_training.py", (), ("--fast",), figs_training, timeout_s=3600),
        Bench("image", "bench_image.py", (), (), figs_image),
    ]


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_one(b: Bench, quick: bool, out_dir: Path, env: dict[str, str]) -> dict:
    """Run one bench as a subprocess; its JSON, status, error, seconds and load average."""
    js, log = out_dir / f"{b.name}.json", out_dir / f"{b.name}.log"
    js.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH / b.script), "--json", str(js), *(b.quick if quick else b.full)]
    rec: dict = {"cmd": " ".join([Path(cmd[0]).name, *cmd[1:]]), "log": str(log),
                 "loadavg_start": _load()}
    print(f"\n=== {b.name}: {rec['cmd']}  (load {rec['loadavg_start']})", flush=True)
    t = time.monotonic()
    tail: list[str] = []
    with open(log, "w") as fh:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, bufsize=1, start_new_session=True)

        def pump() -> None:
            for line in p.stdout:
                fh.write(line)
                print(f"[{b.name}] {line}", end="", flush=True)
                tail.append(line.rstrip())
                del tail[:-40]
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            p.wait(b.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGTERM)          # the bench stops what it started
            try:
                p.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        reader.join(10)
    rec.update({"seconds": round(time.monotonic() - t, 1), "loadavg_end": _load(),
                "returncode": p.returncode})
    if timed_out:
        rec.update(status="failed", error=f"timed out after {b.timeout_s:.0f} s")
    elif p.returncode != 0:
        rec.update(status="failed", error=_error_line(tail, p.returncode))
    elif not js.is_file():
        rec.update(status="failed", error="exited 0 but wrote no JSON")
    else:
        try:
            rec.update(status="ok", result=json.loads(js.read_text()))
        except ValueError as e:
            rec.update(status="failed", error=f"unreadable JSON: {e}")
    return rec


def _error_line(tail: list[str], code: int) -> str:
    lines = [x for x in tail if x.strip()]
    for x in reversed(lines):                 # the exception line of a traceback, if any
        if not x.startswith((" ", "\t")) and ("Error" in x or "error" in x or "Exception" in x):
            return x[:300]
    return (lines[-1][:300] if lines else "") + f" (exit {code})"


def collect(name: str, b: Bench, rec: dict) -> list[Figure]:
    if rec["status"] != "ok":
        return [Figure(name, "bench failed", None, "", status="failed", note=rec["error"])]
    try:
        return b.figures(rec["result"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
        rec["status"], rec["error"] = "failed", f"figures not found in its JSON: {type(e).__name__}: {e}"
        return [Figure(name, "bench failed", None, "", status="failed", note=rec["error"])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short windows: a smoke run")
    ap.add_argument("--only", default="", help="comma-separated bench names (see --list)")
    ap.add_argument("--mesh-window", default=None,
                    help="'full' or the last N days (default full; 20 with --quick)")
    ap.add_argument("--out-root", type=Path, default=BENCH / "out",
                    help="where runs go (ignored by git): <out-root>/<UTC time>/, "
                         "<out-root>/latest and the sizer's <out-root>/cache")
    ap.add_argument("--out", type=Path, default=None,
                    help="this run's folder for raw JSON and logs (default <out-root>/<UTC time>; "
                         "given, <out-root>/latest is left alone)")
    ap.add_argument("--results", type=Path, default=None,
                    help="folder for results.json and results.md (default: the run's folder)")
    ap.add_argument("--list", action="store_true", help="list the benches and exit")
    args = ap.parse_args(argv)
    if args.mesh_window and args.mesh_window != "full":
        try:
            if float(args.mesh_window) <= 0:
                raise ValueError
        except ValueError:
            ap.error(f"--mesh-window must be 'full' or a positive number of days, got {args.mesh_window!r}")
    all_benches = benches(args.mesh_window, args.quick, args.out_root / "cache")
    names = [b.name for b in all_benches]
    if args.list:
        for b in all_benches:
            print(f"{b.name:10s} bench/{b.script}")
        return 0
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = sorted(set(only) - set(names))
    if unknown:
        ap.error(f"unknown bench(es) {unknown}; known: {', '.join(names)}")
    selected = [b for b in all_benches if not only or b.name in only]
    started = datetime.now(UTC)
    out = args.out or args.out_root / run_dir_name(started)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    mesh_window = next((b.full[1] for b in selected if b.name == "mesh"), None)
    doc: dict = {"timestamp": started.isoformat(timespec="seconds"),
                 "git_commit": _git("rev-parse", "HEAD"),
                 "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
                 "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()},
                 "loadavg_start": _load(), "quick": args.quick, "mesh_window": mesh_window,
                 "out_dir": _rel(out),
                 "benches": {}, "figures": []}
    t0 = time.monotonic()
    for b in selected:
        rec = run_one(b, args.quick, out, env)
        figs = collect(b.name, b, rec)
        doc["benches"][b.name] = rec
        doc["figures"] += [{**asdict(f), "target_text": f.target_text} for f in figs]
        print(f"=== {b.name}: {rec['status']} in {rec['seconds']} s"
              + (f": {rec['error']}" if rec["status"] != "ok" else ""), flush=True)
    doc["loadavg_end"] = _load()
    doc["wall_s"] = time.monotonic() - t0
    results = args.results or out
    md = write_results(doc, results)
    if args.out is None:
        point_latest(args.out_root, out)
    print("\n" + md)
    print(f"results: {_rel(results / 'results.md')} and results.json", flush=True)
    failed = [n for n, r in doc["benches"].items() if r["status"] != "ok"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
