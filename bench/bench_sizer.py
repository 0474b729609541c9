"""RL sizing benchmark: SAC training time for the full curriculum, validation Sharpe RL vs pure
Kelly (honest, on the held-back windows), and sizing decision latency.

    .venv/bin/python bench/bench_sizer.py [--seed 7] [--json out.json] [--skip-train]

1. OOS signals (:mod:`tm_trainer.rl.oos`, cached under ``--cache-dir``; build time reported
   separately, it is not RL training).
2. :func:`tm_trainer.rl.train.train_and_validate` with the default :class:`TrainConfig` (phase 1
   20k steps calm/cheap, phase 2 40k steps full costs): wall and CPU seconds per phase. Target
   <= 10 min on 2 cores. Nothing is registered.
3. Decision latency (µs, p50/p99) of one sizing decision with the trained numpy policy: the engine
   call that completes a join (Kelly, observation, actor, cascade), the whole handler call
   (event decoding to ``Emit``, metrics), and the numpy actor forward alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import numpy as np
import tm_trainer  # noqa: F401 - OMP_WAIT_POLICY before xgboost/torch load
from prometheus_client import CollectorRegistry
from tm_common.models.bundle import Bundle
from tm_quant.sizing.observation import OBS_DIM
from tm_sizer.domain.engine import RegimeIn, SignalIn, SizerEngine
from tm_sizer.domain.policy import RLPolicy
from tm_sizer.handler import SizerHandler
from tm_sizer.metrics import SizerMetrics
from tm_sizer.policies import SizerPolicies
from tm_sizer.testing import bar_env, policy_bundle, random_actor_arrays, regime_env, signal_env

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def pct(xs: list[float]) -> dict[str, float]:
    a = np.array(xs) * 1e6
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99)),
            "mean_us": float(a.mean()), "n": len(xs)}


def bench_engine(policy: RLPolicy, n: int) -> dict[str, float]:
    e = SizerEngine()
    e.set_policy(policy)
    rng = np.random.default_rng(0)
    close = dict.fromkeys(SYMS, 100.0)
    times = []
    for i in range(n):
        for s in SYMS:
            close[s] *= 1 + rng.normal(0, 0.01)
            e.on_bar(s, i, close[s])
            e.on_regime(RegimeIn(s, i, "Bull", (0.6, 0.2, 0.1, 0.1), 0.01))
            p = float(rng.uniform(0.1, 0.9))
            sig = SignalIn(s, i, 1 if p > 0.5 else -1, p, abs(2 * p - 1), 0.08, i)
            t = time.perf_counter()
            r = e.on_signal(sig)
            times.append(time.perf_counter() - t)
            assert len(r.outs) == 1
    return pct(times)


def bench_handler(bundle: Bundle, n: int) -> dict[str, float]:
    from tm_sizer.testing import FakeRegistry

    reg = FakeRegistry()
    reg.add(bundle, production=True)
    h = SizerHandler(SizerEngine(), SizerPolicies(reg), metrics=SizerMetrics(CollectorRegistry()))
    h.restore(None)
    rng = np.random.default_rng(1)
    times = []

    async def run() -> None:
        close = dict.fromkeys(SYMS, 100.0)
        for i in range(n):
            for s in SYMS:
                close[s] *= 1 + rng.normal(0, 0.01)
                await h.handle(bar_env(s, i, close[s]))
                await h.handle(regime_env(s, i))
                ev = signal_env(s, i, p=float(rng.uniform(0.1, 0.9)), live_ic=0.08)
                t = time.perf_counter()
                out = await h.handle(ev)
                times.append(time.perf_counter() - t)
                assert len(out) == 1
    asyncio.run(run())
    return pct(times)


def bench_actor(policy: RLPolicy, n: int) -> dict[str, float]:
    obs = np.random.default_rng(2).uniform(-3, 3, (n, OBS_DIM))
    times = []
    for o in obs:
        t = time.perf_counter()
        policy.actor.act(o)
        times.append(time.perf_counter() - t)
    return pct(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cache-dir", type=Path, default=Path(".tm/cache"))
    ap.add_argument("--decisions", type=int, default=2000, help="bars x 3 instruments")
    ap.add_argument("--skip-train", action="store_true", help="latency only (random policy)")
    args = ap.parse_args()
    out: dict = {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    if args.skip_train:
        bundle = policy_bundle(arrays=random_actor_arrays(hidden=(64, 64)))
    else:
        from tm_trainer.rl.cache import load_or_build
        from tm_trainer.rl.train import TrainConfig, train_and_validate

        cfg = TrainConfig(seed=args.seed)
        w, c = time.perf_counter(), time.process_time()
        data = load_or_build(SYMS, cfg.wf, cache_dir=args.cache_dir, log=print)
        out["oos"] = {"wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c,
                      "rows": {d.instrument: len(d) for d in data}}
        w, c = time.perf_counter(), time.process_time()
        res = train_and_validate(data, cfg, log=print)
        out["training"] = {"wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c,
                           **res.timings, "steps": cfg.phase1_steps + cfg.phase2_steps,
                           "version": res.version}
        out["gate"], out["validation"] = res.gate, res.validation
        bundle = Bundle.from_bytes(res.bundle_bytes)
        print(f"\ntraining (curriculum, {cfg.phase1_steps}+{cfg.phase2_steps} steps): "
              f"{out['training']['wall_s']:.0f} s wall, {out['training']['cpu_s']:.0f} s CPU")
        print(f"{'policy':14s} {'Sharpe':>8s} {'return':>8s} {'maxDD':>7s} {'|pos|':>6s} "
              f"{'turnover':>8s}")
        for k, v in res.validation.items():
            print(f"{k:14s} {v['sharpe']:8.3f} {v['total_return']:8.2%} {v['max_drawdown']:7.2%} "
                  f"{v['mean_abs_position']:6.3f} {v['turnover']:8.4f}")
        print(f"gate: {'PASSED' if res.gate['passed'] else 'FAILED'} (RL {res.gate['rl_sharpe']:.3f}"
              f" vs pure Kelly {res.gate['kelly_sharpe']:.3f})")
    policy = RLPolicy.from_manifest(bundle.manifest, bundle.npz)
    out["latency"] = {"engine_decision": bench_engine(policy, args.decisions),
                      "handler_signal_event": bench_handler(bundle, args.decisions),
                      "numpy_actor": bench_actor(policy, 5000)}
    out["loadavg_end"] = os.getloadavg()
    for k, v in out["latency"].items():
        print(f"{k:22s} p50 {v['p50_us']:7.1f} µs   p99 {v['p99_us']:7.1f} µs")
    print(f"load average start {out['loadavg_start']}, end {out['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
