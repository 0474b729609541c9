"""Run every benchmark and collect their figures: ``bench/results.json`` and ``bench/results.md``.

Each bench runs as its own subprocess (``python bench/<script> --json bench/out/<name>.json``),
one after the other so that they do not compete for the cores; its output is shown with a
prefix and kept in ``bench/out/<name>.log``. A bench that fails or times out is a row marked
``failed`` with its error, and this script exits 1 at the end. The machine's load average is
recorded before and after each bench (the numbers are only as good as the machine was quiet).

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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OPS = {"<=": "≤", "<": "<", ">=": "≥"}


# -- figures ----------------------------------------------------------------------------------
@dataclass
class Figure:
    """One number of one bench; ``target`` is ``(op, threshold)`` with op in <=, <, >=."""

    bench: str
    name: str
    value: float | None
    unit: str
    target: tuple[str, float] | None = None
    note: str = ""
    status: str = field(default="")

    def __post_init__(self) -> None:
        if self.status:
            return
        if self.target is None:
            self.status = "" if self.value is not None else "no data"
        elif self.value is None:
            self.status = "no data"
        else:
            op, x = self.target
            ok = {"<=": self.value <= x, "<": self.value < x, ">=": self.value >= x}[op]
            self.status = "met" if ok else "missed"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        op, x = self.target
        return f"{OPS[op]} {x:,g} {self.unit}".strip()


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


def _get(doc: dict, *path, default=None):
    for p in path:
        if not isinstance(doc, dict) or p not in doc:
            return default
        doc = doc[p]
    return doc


def figs_bus(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("bus", *a, **k)
    return [
        f("raw redis-py XADD→XREADGROUP hop p50", d["raw_hop_p50_ms"], "ms"),
        f("raw redis-py XADD→XREADGROUP hop p99", d["raw_hop_p99_ms"], "ms"),
        f("bus hop publish→handler p50", d["bus_hop_p50_ms"], "ms"),
        f("bus hop publish→handler p99", d["bus_hop_p99_ms"], "ms"),
        f("bus hop publish→committed (ack) p50", d["bus_hop_committed_p50_ms"], "ms"),
        f("bus hop overhead over raw, p50", d["bus_hop_p50_ms"] - d["raw_hop_p50_ms"], "ms"),
        f("bus hop overhead over raw, p99", d["bus_hop_p99_ms"] - d["raw_hop_p99_ms"], "ms"),
        f("bus/raw hop ratio p50", d["ratio_p50"], "×", ("<=", 1.5)),
        f("bus/raw hop ratio p99", d["ratio_p99"], "×", ("<=", 1.5)),
        f("raw sustained throughput", d["raw_sustained_msgs_per_s"], "msg/s"),
        f("bus sustained throughput", d["bus_sustained_msgs_per_s"], "msg/s"),
    ]


def figs_ingest(d: dict) -> list[Figure]:
    note = f"{d['ingest_lockstep_steps']} bar times"
    return [Figure("ingest", "ingest-only lockstep replay", d["ingest_lockstep_secs"], "s", note=note),
            Figure("ingest", "ingest-only lockstep throughput", d["ingest_lockstep_bars_per_s"], "bars/s"),
            Figure("ingest", "ingest-only lockstep time per bar time", d["ingest_lockstep_ms_per_step"], "ms")]


def figs_features(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("features", *a, **k)
    out = []
    for key, label in (("incremental_update", "IncrementalFeatures.update"),
                       ("garch_update", "GarchFilter.update"), ("regime_update", "RegimeFilter.update")):
        out += [f(f"{label} p50", d[key]["p50_us"], "µs"), f(f"{label} p99", d[key]["p99_us"], "µs")]
    return out + [f(f"compute_batch ({d['bars']} bars)", d["compute_batch_ms"], "ms")]


def figs_signal(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("signal", *a, **k)
    fast, xgb = d["numpy tree walk (default)"], d["xgboost inplace_predict"]
    note = d.get("model", "")
    return [
        f("inference p50 (numpy tree walk, default)", fast["inference"]["p50_us"], "µs", note=note),
        f("inference p99 (numpy tree walk, default)", fast["inference"]["p99_us"], "µs"),
        f("features+inference p50", fast["features+inference"]["p50_us"], "µs", ("<=", 300)),
        f("features+inference p99", fast["features+inference"]["p99_us"], "µs", ("<=", 1000)),
        f("on_bar p50", fast["on_bar"]["p50_us"], "µs"),
        f("on_bar p99", fast["on_bar"]["p99_us"], "µs"),
        f("inference p50 (xgboost inplace_predict)", xgb["inference"]["p50_us"], "µs"),
        f("inference p99 (xgboost inplace_predict)", xgb["inference"]["p99_us"], "µs"),
    ]


def figs_sizer(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("sizer", *a, **k)
    lat = d["latency"]
    out = []
    for key, label in (("engine_decision", "sizing decision (engine)"),
                       ("handler_signal_event", "sizing decision (handler, event in → out)"),
                       ("numpy_actor", "SAC actor forward (numpy)")):
        out += [f(f"{label} p50", lat[key]["p50_us"], "µs"), f(f"{label} p99", lat[key]["p99_us"], "µs")]
    if "training" in d:
        gate = d.get("gate", {})
        out.append(f("SAC training (full curriculum) wall", d["training"]["wall_s"], "s", ("<=", 600),
                     note=f"{d['training']['steps']} steps; gate {'passed' if gate.get('passed') else 'failed'}"))
        out.append(f("OOS signals for RL (walk-forward, cached)", d["oos"]["wall_s"], "s",
                     note="0 when read from the cache"))
    else:
        out[0].note = "random policy (--skip-train)"
    return out


def figs_risk(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("risk", *a, **k)
    out = []
    for key in ("decide", "decide after bar", "decide + snapshot", "consumer hop"):
        out += [f(f"{key} p50", d[key]["p50_us"], "µs"), f(f"{key} p99", d[key]["p99_us"], "µs")]
    return out


def figs_executor(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("executor", *a, **k)
    return [f("pybit place_order → sim round trip p50", d["place_order_p50_ms"], "ms"),
            f("pybit place_order → sim round trip p99", d["place_order_p99_ms"], "ms"),
            f("intent published → OrderReported p50", d["round_trip_p50_ms"], "ms"),
            f("intent published → OrderReported p99", d["round_trip_p99_ms"], "ms")]


def figs_backtest(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("backtest", *a, **k)
    w = "full history" if d["window"] == "full" else f"last {d['window']} days"
    return [f("in-process backtest throughput", d["bars_per_s"], "bars/s", (">=", 5000),
              note=f"{w}, {d['bars']} bars, {d['seconds']:.1f} s incl. {d['setup_s']:.1f} s setup"),
            f("in-process backtest throughput, replay only", d["bars_per_s_replay"], "bars/s",
              note="setup (model load, venue) excluded")]


def figs_mesh(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("mesh", *a, **k)
    full = d["window"] == "full"
    w = "full history" if full else f"last {d['window']} days"
    lat = d["latency_ms"]
    ack = lat["bar→order acknowledged"]
    n_note = f"{ack['n']} orders, {w}"
    out = []
    if full:
        out.append(f("lockstep replay, full history", d["replay_s"], "s", ("<=", 30),
                     note=f"{d['bar_times']} bar times × 3 instruments"))
    else:
        out.append(f(f"lockstep replay, {w}", d["replay_s"], "s",
                     note=f"{d['bar_times']} bar times × 3 instruments"))
        out.append(f("lockstep replay, full history (extrapolated)",
                     d["full_history_replay_s_extrapolated"], "s", ("<=", 30),
                     note=f"{d['full_history_bar_times']} bar times at the measured ms per bar time"))
    out += [f("lockstep time per bar time", d["ms_per_bar_time"], "ms"),
            f("bar close → order acknowledged p50", ack["p50"], "ms", ("<=", 5), note=n_note),
            f("bar close → order acknowledged p99", ack["p99"], "ms", ("<=", 10)),
            f("bar close → order acknowledged p99 (design claim)", ack["p99"], "ms", ("<", 50))]
    for hop in ("bar→signal", "bar→sized", "bar→order approved"):
        out += [f(f"{hop} p50", lat[hop]["p50"], "ms"), f(f"{hop} p99", lat[hop]["p99"], "ms")]
    for name, mib in d["peak_rss_mib"].items():
        out.append(f(f"peak RSS {name}", mib, "MiB", note="VmHWM"))
    if "ingest" not in d["peak_rss_mib"]:
        out.append(f("peak RSS ingest", None, "MiB", note="not reachable in this run"))
    return out


def figs_main(d: dict) -> list[Figure]:
    f = lambda *a, **k: Figure("main", *a, **k)
    return [f("tm demo --fast-train, wall time", d["wall_s"], "s", note=d["command"]),
            f("tm demo, total seconds as reported", d["total_s_reported"], "s"),
            f("tm demo, replay seconds", d["replay_s"], "s")]


def figs_training(d: dict) -> list[Figure]:
    note = f"{d.get('n_windows', '?')} walk-forward windows; gate {'passed' if d['gate_passed'] else 'failed'}"
    if d.get("fast"):
        return [Figure("training", "walk-forward training (--fast, smoke)", d["wall_s"], "s", note=note)]
    return [Figure("training", "walk-forward training, 3 instruments", d["wall_s"], "s", ("<=", 300),
                   note=note),
            Figure("training", "walk-forward training, CPU", d["cpu_s"], "s")]


# -- benches ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    figures: Callable[[dict], list[Figure]]
    timeout_s: float = 1800


def benches(mesh_window: str | None, quick: bool, out_dir: Path) -> list[Bench]:
    mw = mesh_window or ("20" if quick else "full")
    return [
        Bench("bus", "bench_bus.py", (), ("-n", "300"), figs_bus),
        Bench("ingest", "bench_ingest.py", (), ("--bars", "200"), figs_ingest),
        Bench("features", "bench_features.py", (), ("--repeats", "1"), figs_features),
        Bench("signal", "bench_signal.py", (), (), figs_signal),
        Bench("sizer", "bench_sizer.py", ("--cache-dir", str(out_dir / "cache")),
              ("--skip-train", "--decisions", "500"), figs_sizer, timeout_s=3600),
        Bench("risk", "bench_risk.py", (), ("--n", "500"), figs_risk),
        Bench("executor", "bench_executor.py", (), ("-n", "50"), figs_executor),
        Bench("backtest", "bench_backtest.py", ("--window", "365"), ("--window", "10"), figs_backtest),
        Bench("mesh", "bench_mesh.py", ("--window", mw), ("--window", mw), figs_mesh,
              timeout_s=6 * 3600),
        Bench("main", "bench_main.py", (), ("--end", "2025-01-04"), figs_main),
        Bench("training", "bench_training.py", (), ("--fast",), figs_training, timeout_s=3600),
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


# -- output -----------------------------------------------------------------------------------
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short windows: a smoke run")
    ap.add_argument("--only", default="", help="comma-separated bench names (see --list)")
    ap.add_argument("--mesh-window", default=None,
                    help="'full' or the last N days (default full; 20 with --quick)")
    ap.add_argument("--out", type=Path, default=BENCH / "out", help="raw JSON and logs")
    ap.add_argument("--results", type=Path, default=BENCH,
                    help="folder for results.json and results.md")
    ap.add_argument("--list", action="store_true", help="list the benches and exit")
    args = ap.parse_args(argv)
    if args.mesh_window and args.mesh_window != "full":
        try:
            if float(args.mesh_window) <= 0:
                raise ValueError
        except ValueError:
            ap.error(f"--mesh-window must be 'full' or a positive number of days, got {args.mesh_window!r}")
    all_benches = benches(args.mesh_window, args.quick, args.out)
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
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    mesh_window = next((b.full[1] for b in selected if b.name == "mesh"), None)
    doc: dict = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                 "git_commit": _git("rev-parse", "HEAD"),
                 "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
                 "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                             "platform": platform.platform()},
                 "loadavg_start": _load(), "quick": args.quick, "mesh_window": mesh_window,
                 "out_dir": _rel(args.out),
                 "benches": {}, "figures": []}
    t0 = time.monotonic()
    for b in selected:
        rec = run_one(b, args.quick, args.out, env)
        figs = collect(b.name, b, rec)
        doc["benches"][b.name] = rec
        doc["figures"] += [{**asdict(f), "target_text": f.target_text} for f in figs]
        print(f"=== {b.name}: {rec['status']} in {rec['seconds']} s"
              + (f": {rec['error']}" if rec["status"] != "ok" else ""), flush=True)
    doc["loadavg_end"] = _load()
    doc["wall_s"] = time.monotonic() - t0
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    md = markdown(doc)
    (args.results / "results.md").write_text(md)
    print("\n" + md)
    failed = [n for n, r in doc["benches"].items() if r["status"] != "ok"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
