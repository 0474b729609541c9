"""Per-bar cost of the live feature path: ``IncrementalFeatures.update`` on the real BTC 4h bars.

Also times the other per-bar quant steps the live services run (GARCH filter step, HMM forward
step) and the batch path for reference. Prints numbers only (no asserts).
Usage: ``python bench/bench_features.py [--symbol ETHUSDT] [--repeats 5] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tm_quant.features import BAR_MS, WARMUP_BARS, Bar, IncrementalFeatures, compute_batch
from tm_quant.garch import DEFAULT_GARCH_PARAMS, GarchFilter
from tm_quant.regime import RegimeFilter, RegimeModel

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (ROOT / "data" / "history", Path("/work/shared/data/ohlcv"))


def load(symbol: str) -> pd.DataFrame:
    for folder in SOURCES:
        path = folder / f"{symbol}_4h.csv"
        if path.exists():
            return pd.read_csv(path)
    raise SystemExit(f"no {symbol}_4h.csv in {[str(s) for s in SOURCES]}")


def stats(us: list[float]) -> dict[str, float]:
    a = np.asarray(us)
    return {"n": int(a.size), "p50_us": float(np.percentile(a, 50)),
            "p99_us": float(np.percentile(a, 99)), "max_us": float(a.max())}


def pct(us: list[float]) -> str:
    s = stats(us)
    return f"p50 {s['p50_us']:7.1f} µs   p99 {s['p99_us']:7.1f} µs   max {s['max_us']:8.1f} µs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--repeats", type=int, default=5, help="passes over the history")
    ap.add_argument("--json", default=None, help="write results to this file")
    args = ap.parse_args()

    df = load(args.symbol)
    bars = [Bar(*row) for row in df.itertuples(index=False)]
    if args.symbol == "BTCUSDT":
        btc = [None] * len(bars)
    else:
        by_ts = {int(r[0]): Bar(*r) for r in load("BTCUSDT").itertuples(index=False)}
        btc = [by_ts.get(bar.ts_ms) for bar in bars]
    per_bar: list[float] = []
    for _ in range(args.repeats):
        inc = IncrementalFeatures()
        for i, (bar, b) in enumerate(zip(bars, btc)):
            # DVOL/funding are passed on the bars where a new value would arrive (daily / 8-hourly).
            close_h = ((bar.ts_ms + BAR_MS) // 3_600_000) % 24
            dvol = 50.0 if close_h == 0 else None
            funding = 1e-4 if close_h % 8 == 0 else None
            t0 = time.perf_counter_ns()
            inc.update(bar, dvol=dvol, funding=funding, btc_bar=b)
            dt = time.perf_counter_ns() - t0
            if i >= WARMUP_BARS:
                per_bar.append(dt / 1e3)
    print(f"IncrementalFeatures.update  {args.symbol}, {len(bars)} bars x {args.repeats}: {pct(per_bar)}")

    r = np.diff(np.log(df["close"].to_numpy())) * 100
    g = GarchFilter(DEFAULT_GARCH_PARAMS)
    g_us = []
    for x in r:
        x = float(x)
        t0 = time.perf_counter_ns()
        g.update(x)
        g_us.append((time.perf_counter_ns() - t0) / 1e3)
    print(f"GarchFilter.update          {pct(g_us)}")

    # Fixed illustrative HMM (no fit): the cost of one forward step does not depend on the values.
    model = RegimeModel(startprob=np.full(4, 0.25), transmat=np.full((4, 4), 0.02) + np.eye(4) * 0.92,
                        means=np.array([[0.002, -4.6], [0.0, -4.8], [-0.002, -4.5], [-0.001, -3.8]]),
                        covars=np.tile(np.diag([1e-4, 0.1]), (4, 1, 1)))
    rf = RegimeFilter(model)
    obs = np.column_stack([r / 100, np.full_like(r, -4.5)])
    h_us = []
    for x in obs:
        t0 = time.perf_counter_ns()
        rf.update(x)
        h_us.append((time.perf_counter_ns() - t0) / 1e3)
    print(f"RegimeFilter.update         {pct(h_us)}")

    t0 = time.perf_counter()
    compute_batch(df)
    batch_ms = (time.perf_counter() - t0) * 1e3
    print(f"compute_batch               {len(df)} bars in {batch_ms:.1f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"symbol": args.symbol, "bars": len(bars), "repeats": args.repeats,
                       "incremental_update": stats(per_bar), "garch_update": stats(g_us),
                       "regime_update": stats(h_us), "compute_batch_ms": batch_ms}, f, indent=2)


if __name__ == "__main__":
    main()
