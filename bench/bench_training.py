"""Full walk-forward training on the shipped history: time it and print the real OOS report.

    .venv/bin/python bench/bench_training.py [--seed 7] [--json out.json] [--instruments BTCUSDT,...]
        [--fast]

Runs :func:`tm_trainer.pipeline.train` with the default configuration (40 weekly windows, purge
200 bars, horizon 6 bars, Boruta per instrument, pooled base + per-instrument XGBoost, regime
HMMs; training cut-off 2025-01-01) and prints wall and CPU time, the walk-forward OOS table (model
vs the 42-bar momentum baseline) and the gate verdict. Then it scores the final candidate on the
held-out bars from the cut-off to the end of the data (never used by training or gating).
Target: <= 5 min on 2 cores. Nothing is registered. ``--fast``: the reduced configuration of
``tm train --fast`` (4 windows; for smoke runs, not the target).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import tm_trainer  # noqa: F401 - sets OMP_WAIT_POLICY before xgboost loads
from rich.console import Console
from tm_common.models.bundle import Bundle
from tm_trainer.config import TrainConfig
from tm_trainer.holdout import score_bundle
from tm_trainer.pipeline import train
from tm_trainer.report import markdown, progress_bars, rich_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--instruments", default="BTCUSDT,ETHUSDT,SOLUSDT")
    ap.add_argument("--json", default=None, help="write the full report here")
    ap.add_argument("--fast", action="store_true", help="reduced configuration (smoke runs)")
    args = ap.parse_args()
    cfg = TrainConfig(instruments=tuple(args.instruments.split(",")), seed=args.seed)
    if args.fast:
        cfg = cfg.fast()
    con = Console()
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    with progress_bars(cfg.n_windows, len(cfg.instruments)) as cb:
        result = train(cfg, cb)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    con.print(rich_table(result.report))
    verdict = "PASS" if result.gate_passed else "FAIL: " + "; ".join(result.reasons)
    from tm_trainer.train_cli import gates_text
    con.print(f"gates ({gates_text(cfg.gates)}): {verdict}")
    con.print(f"candidate {result.signal_version}; features: {json.dumps(result.features)}")
    con.print(f"regime {result.regime['version']} sanity ok={result.regime['ok']}")
    con.print(f"time: wall {wall:.1f} s, CPU (this process, all threads) {cpu:.1f} s, "
              f"load average at start {load0:.1f} / end {os.getloadavg()[0]:.1f}; "
              f"phases {json.dumps({k: round(v, 1) for k, v in result.timings_s.items()})}")
    hold = score_bundle(Bundle.from_bytes(result.signal_bytes), history_dir=cfg.history_dir)
    con.print(rich_table({"summary": hold, "windows": []},
                         title="Held-out (2025-01-01 → end of data, final candidate)"))
    print(markdown(result.report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"fast": args.fast, "n_windows": cfg.n_windows,
                       "loadavg_start": load0, "loadavg_end": os.getloadavg()[0],
                       "version": result.signal_version, "gate_passed": result.gate_passed,
                       "reasons": result.reasons, "walkforward": result.report, "holdout": hold,
                       "features": result.features, "wall_s": wall, "cpu_s": cpu,
                       "timings_s": result.timings_s}, fh, indent=1)


if __name__ == "__main__":
    main()
