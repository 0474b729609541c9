"""In-process backtest throughput: ``tm_app.backtest.run_backtest`` (every handler in one process
on the in-memory bus, in-process venue) over a window of the shipped history. Target >= 5,000
bars/s (bars = bar.closed events, all instruments).

Benchmark configuration as in ``bench_mesh``: fast-trained models in a throwaway SQLite registry,
the signal candidate in production, lowered cascade thresholds so that the window trades; logging
at WARNING (``TM_LOG_LEVEL=WARNING``).

Usage: ``python bench/bench_backtest.py [--window DAYS|full] [--json PATH]`` (default 365 days,
the last year of the history).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

os.environ["TM_LOG_LEVEL"] = "WARNING"          # before any service module configures logging

import _benchlib as lib


def run(window: str, profile: int = 0) -> dict:
    from tm_app.backtest import RunConfig, run_backtest
    from tm_common.logging import configure_logging
    from tm_common.settings import CommonSettings

    # the handlers log through structlog; unconfigured, it prints every INFO line to stdout
    configure_logging(CommonSettings(service_name="backtest", log_level="WARNING"))
    start_ms, end_ms = lib.window(window)
    out: dict = {"window": window, "start_ms": start_ms, "end_ms": end_ms,
                 "machine_start": lib.machine()}
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        t = time.monotonic()
        db_url = lib.train_models(Path(tmp))
        out["train_s"] = time.monotonic() - t
        cfg = RunConfig(start_ms=start_ms, end_ms=end_ms, database_url=db_url,
                        extra_env=dict(lib.TRADING_ENV))
        last = [time.monotonic()]
        first: list[float] = []

        def progress(p) -> None:
            if not first:
                first.append(time.perf_counter())
            if time.monotonic() - last[0] > 10:
                last[0] = time.monotonic()
                print(f"  backtest: step {p.step}/{p.steps}", flush=True)
        stages: dict[str, dict[str, int]] = {}
        prof = None
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        t, c = time.perf_counter(), time.process_time()
        rec = asyncio.run(run_backtest(cfg, on_progress=progress, stages=stages))
        end = time.perf_counter()
        if prof is not None:
            import pstats
            prof.disable()
            pstats.Stats(prof).sort_stats(os.environ.get("TM_BENCH_PROFILE_SORT", "cumulative")).print_stats(profile)
        secs, cpu = end - t, time.process_time() - c
    bars = len(rec.bars)
    steps = len(rec.snapshots)
    replay = end - first[0] if first else secs
    out.update({"seconds": secs, "cpu_s": cpu, "bars": bars, "bar_times": steps,
                "bars_per_s": bars / secs, "setup_s": secs - replay, "replay_s": replay,
                # the first step's own time is inside setup_s: rate over the remaining steps
                "bars_per_s_replay": bars * (steps - 1) / steps / replay if steps > 1 else None,
                "counts": {"signals": len(rec.signals), "orders": len(rec.orders),
                           "fills": len(rec.fills), "snapshots": len(rec.snapshots)},
                "stages": stages, "stage_ms_per_bar_time": lib.stage_ms(stages, steps),
                "machine_end": lib.machine()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", default="365", help="last N days of the history, or 'full'")
    ap.add_argument("--json", help="write results to this file")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="run under cProfile and print its N top functions (cumulative)")
    args = ap.parse_args()
    res = run(args.window, args.profile)
    lib.report(args.json, res,
               f"in-process backtest, window {args.window} days: {res['bars']} bars "
               f"({res['bar_times']} bar times) in {res['seconds']:.2f} s = {res['bars_per_s']:.0f} "
               f"bars/s (target >= 5000); setup {res['setup_s']:.2f} s, replay alone "
               f"{res['bars_per_s_replay'] or 0:.0f} bars/s; CPU {res['cpu_s']:.1f} s; {res['counts']}",
               "  where one bar time goes, per consumer group (ms; the rest is the lockstep "
               "drain's empty reads, ingest and the venue):",
               *lib.stage_table(res["stages"], res["bar_times"], "bar time"))


if __name__ == "__main__":
    main()
