"""Wall time of the main command, as a user runs it: ``tm demo --fast-train`` on the embedded
defaults (no ``TM_`` variable: embedded Redis, SQLite under ``.tm``) in a fresh temp directory,
so it trains its models, starts the mesh, replays the window and writes the report. Records the
command's total seconds (measured outside it and as it reports them) and its replay seconds;
afterwards ``tm down --redis`` stops the embedded Redis it started.

Usage: ``python bench/bench_main.py [--start 2025-01-01] [--end 2025-01-15] [--port-offset 500]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _benchlib as lib


def run(start: str, end: str, port_offset: int, timeout_s: float) -> dict:
    tm = str(Path(sys.executable).parent / "tm")
    out: dict = {"command": f"tm demo --start {start} --end {end} --fast-train "
                            f"--port-offset {port_offset}", "machine_start": lib.machine()}
    with tempfile.TemporaryDirectory(prefix="bench-main-") as tmp:
        tmp = Path(tmp)
        env = lib.clean_env()
        argv = [tm, "demo", "--start", start, "--end", end, "--fast-train",
                "--port-offset", str(port_offset), "--out", str(tmp / "report")]
        t = time.perf_counter()
        try:
            p = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True,
                               timeout=timeout_s, check=False)
        finally:
            wall = time.perf_counter() - t
            subprocess.run([tm, "down", "--redis"], env=env, cwd=tmp, capture_output=True,
                           timeout=120, check=False)
        (tmp / "stdout.txt").write_text(p.stdout)
        if p.returncode != 0:
            raise SystemExit(f"tm demo exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        doc = json.loads((tmp / "report" / "report.json").read_text())
    meta = doc.get("meta", {})
    lat = doc.get("latency_ms", {}).get("bar→order acknowledged", {})
    out.update({"wall_s": wall, "total_s_reported": meta.get("total_seconds"),
                "replay_s": meta.get("replay_seconds"), "counts": doc.get("counts"),
                "bar_to_ack_ms": lat, "machine_end": lib.machine()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2025-01-01")
    ap.add_argument("--end", default="2025-01-15")
    ap.add_argument("--port-offset", type=int, default=500)
    ap.add_argument("--timeout-s", type=float, default=1800)
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args()
    # run_all's timeout sends SIGTERM: exit through the finally blocks that stop the processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = run(args.start, args.end, args.port_offset, args.timeout_s)
    lib.report(args.json, res, f"main command: {res['command']}",
               f"  wall {res['wall_s']:.1f} s (reported total {res['total_s_reported']} s), "
               f"replay {res['replay_s']} s; counts {res['counts']}")


if __name__ == "__main__":
    main()
