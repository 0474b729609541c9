"""Per-bar cost of the signal service's domain path: incremental features + booster inference.

Trains a realistic booster (default 200 trees, depth 4, 12 features: the size the trainer
produces) on the shipped BTC history, wraps it in a real signal bundle, then drives
``SignalEngine.on_bar`` over the last ~2,600 bar times of BTC, ETH and SOL in lockstep (DVOL as
known at each bar close), exactly as the handler does. Prints p50/p99 in µs for the features,
the inference, both together (target p50 <= 300 µs, p99 <= 1,000 µs) and the whole ``on_bar``
(ordering, live IC, decision), plus the snapshot encoding the consumer saves per event.

Runs twice: trees walked with numpy (the service default, ``TM_FAST_INFERENCE``) and with
``xgboost.Booster.inplace_predict``.

Usage: ``python bench/bench_signal.py [--trees 200] [--depth 4] [--json bench/out/signal.json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import xgboost as xgb
from tm_common.history import load_bars, load_dvol
from tm_common.models.bundle import Bundle
from tm_quant.features import BAR_MS, FEATURE_NAMES, compute_batch
from tm_quant.garch import DEFAULT_GARCH_PARAMS
from tm_quant.labels import forward_log_return
from tm_signal.domain.bars import BarIn
from tm_signal.domain.engine import EngineConfig, SignalEngine
from tm_signal.domain.model import SignalModel

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
FEATURES = ("ret_1", "ret_6", "ret_24", "rv_42", "garch_vol", "close_ema_26", "macd_hist",
            "rsi_14", "bb_pctb_20", "volume_z_20", "dvol_level", "btc_ret_6")
TRAIN_END = 5000


def frame(bars) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": [b.open_time_ms for b in bars],
                         **{k: [float(getattr(b, k)) for b in bars]
                            for k in ("open", "high", "low", "close", "volume")}})


def build_model(trees: int, depth: int, compile_trees: bool) -> SignalModel:
    dv = pd.DataFrame({"timestamp": [p.day_ms for p in load_dvol()],
                       "dvol_close": [float(p.close) for p in load_dvol()]})
    btc = frame(load_bars("BTCUSDT")[:TRAIN_END])
    X, names = compute_batch(btc, dvol=dv, btc_bars=btc, garch_params=DEFAULT_GARCH_PARAMS)
    cols = [names.index(f) for f in FEATURES]
    y = forward_log_return(btc["close"].to_numpy(), 6)
    ok = ~np.isnan(y) & ~np.isnan(X[:, 0])
    bst = xgb.train({"objective": "binary:logistic", "max_depth": depth, "eta": 0.05,
                     "nthread": 1, "seed": 1}, xgb.DMatrix(X[ok][:, cols], label=y[ok] > 0), trees)
    first = load_bars("BTCUSDT")[TRAIN_END - 300].open_time_ms
    spec = {"booster": "", "features": list(FEATURES), "garch": DEFAULT_GARCH_PARAMS.to_dict(),
            "first_bar_ms": first, "prob_calibration": {"a": 1.0, "b": 0.0}}
    files = {f"{s}.ubj": bytes(bst.save_raw("ubj")) for s in SYMS}
    manifest = {"kind": "signal", "version": f"bench-{trees}x{depth}", "horizon_bars": 6,
                "feature_names": list(FEATURE_NAMES), "metrics": {},
                "instruments": {s: {**spec, "booster": f"{s}.ubj"} for s in SYMS}}
    b = Bundle.from_bytes(Bundle(manifest=manifest, files=files).to_bytes())
    return SignalModel.from_manifest(b.manifest, b.files, compile_trees=compile_trees)


def pct(xs) -> dict[str, float]:
    a = np.asarray(xs, dtype=np.float64)
    return {"p50_us": round(float(np.percentile(a, 50)), 1),
            "p99_us": round(float(np.percentile(a, 99)), 1), "n": int(a.size)}


def run(model: SignalModel) -> dict:
    engine = SignalEngine(EngineConfig(symbols=SYMS))
    engine.set_model(model)
    per = {s: load_bars(s)[TRAIN_END - 300:] for s in SYMS}
    n = min(len(v) for v in per.values())
    points = load_dvol()
    di = 0
    feat, inf, both, whole, snap = [], [], [], [], []
    enc = msgspec.json.Encoder()
    for i in range(n):
        close = per["BTCUSDT"][i].open_time_ms + BAR_MS
        while di < len(points) and points[di].known_at_ms <= close:
            engine.on_dvol(points[di].known_at_ms, float(points[di].close))
            di += 1
        for s in SYMS:
            h = per[s][i]
            bar = BarIn(s, h.open_time_ms, float(h.open), float(h.high), float(h.low),
                        float(h.close), float(h.volume), close * 1_000_000)
            t0 = time.perf_counter_ns()
            outs, _ = engine.on_bar(bar)
            t1 = time.perf_counter_ns()
            for o in outs:
                if o.reason.startswith("ok"):
                    feat.append(o.features_us)
                    inf.append(o.inference_us)
                    both.append(o.features_us + o.inference_us)
                    whole.append((t1 - t0) / 1e3)
            if i % 10 == 0:
                t2 = time.perf_counter_ns()
                enc.encode(engine.snapshot())
                snap.append((time.perf_counter_ns() - t2) / 1e3)
    return {"bar_times": n, "features": pct(feat), "inference": pct(inf),
            "features+inference": pct(both), "on_bar": pct(whole), "snapshot_encode": pct(snap)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    desc = f"{args.trees} trees, depth {args.depth}, {len(FEATURES)} features"
    results = {}
    for name, compiled in (("numpy tree walk (default)", True), ("xgboost inplace_predict", False)):
        res = results[name] = run(build_model(args.trees, args.depth, compiled))
        print(f"signal domain path per bar, {name} ({desc}; {res['features']['n']} predictions, "
              f"{res['bar_times']} bar times x {len(SYMS)} instruments):")
        for k in ("features", "inference", "features+inference", "on_bar", "snapshot_encode"):
            print(f"  {k:20s} p50 {res[k]['p50_us']:8.1f} µs   p99 {res[k]['p99_us']:8.1f} µs")
        fi = res["features+inference"]
        ok = fi["p50_us"] <= 300 and fi["p99_us"] <= 1000
        print(f"  target features+inference p50 <= 300 µs, p99 <= 1000 µs: {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": desc, **results}, indent=2))


if __name__ == "__main__":
    main()
