"""False-pass rate of each gate on driftless random walks (issue 16, part 3).

    .venv/bin/python bench/bench_false_pass.py [--seeds 20] [--family logistic] [--json out.json]

Each seed writes a seeded random-walk history (zero drift, clustered volatility; nothing in it
predicts a return), runs the real purged walk-forward of a signal family on it
(:mod:`tm_trainer.noise`) and evaluates every gate alone and combined (one trial per seed: each
seed is other data). Every pass is a false pass. Prints the table; ``--json`` writes every run.
"""

from __future__ import annotations

import argparse
import json
import time

import tm_trainer  # noqa: F401 - sets OMP_WAIT_POLICY before xgboost loads
from tm_trainer.noise import GATES, NoiseConfig, false_pass_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--family", default="logistic")
    ap.add_argument("--windows", type=int, default=NoiseConfig.n_windows)
    ap.add_argument("--bars", type=int, default=NoiseConfig.n_bars)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    nc = NoiseConfig(n_bars=args.bars, n_windows=args.windows, family=args.family)
    t0 = time.perf_counter()

    def progress(k: int, run: dict) -> None:
        hit = [g for g, ok in run["passes"].items() if ok]
        print(f"seed {run['seed']:3d} ({k + 1}/{args.seeds}): IC {run['ic']}, Sharpe "
              f"{run['sharpe']}, DSR {run['dsr']}, timing t {run['timing_t']}, positive share "
              f"{run['positive_share']}; passes: {', '.join(hit) or 'none'}", flush=True)

    out = false_pass_table(range(args.first_seed, args.first_seed + args.seeds), nc, progress)
    print(f"\nfalse passes on {out['seeds']} random walks ({nc.family}, {len(nc.symbols)} "
          f"instruments, {nc.n_bars} bars, {nc.n_windows} weekly OOS windows), "
          f"{time.perf_counter() - t0:.0f} s")
    print("| gate | passes | rate |\n|---|---:|---:|")
    for g in GATES:
        print(f"| {g} | {out['passes'][g]}/{out['seeds']} | {out['rates'][g]:.0%} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
