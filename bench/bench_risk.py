"""Risk decision latency on the handler path (µs): p50/p99 of

- ``decide``: ``RiskHandler.process(PositionSized)`` with a warm market model (limits, HRP budget
  cap, parametric + historical VaR on 180 4h returns of 3 instruments, lot rounding, intent ids);
- ``decide after bar``: the first decision after a new bar (the market model is rebuilt: aligned
  returns, covariance, HRP clustering);
- ``decide + snapshot``: ``decide`` plus the JSON state snapshot the consumer saves per commit;
- ``consumer hop``: one PositionSized through the real ``Consumer`` on ``InMemoryBus`` (decode,
  handle, snapshot, commit of outputs + ack + state).

Usage: ``python bench/bench_risk.py [--n 3000] [--json PATH]``. No Redis needed.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import _benchlib as lib
import numpy as np
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.streams import SIZING_TARGET
from tm_risk.testing import N_BARS, SYMBOLS, bar_env, target_env, warm_handler

LAST = N_BARS - 1


def _stats(us: list[float]) -> dict[str, float]:
    a = np.asarray(us)
    return {"n": int(a.size), "p50_us": float(np.percentile(a, 50)),
            "p99_us": float(np.percentile(a, 99)), "mean_us": float(a.mean())}


def _targets(n: int):
    # alternate sizes so every decision has a delta to trade
    return [target_env(SYMBOLS[i % 3], LAST, (0.1 + 0.2 * (i % 2)) * (-1) ** (i // 3), tag=str(i))
            for i in range(n)]


def bench_decide(n: int, with_snapshot: bool) -> dict[str, float]:
    h, _ = warm_handler()
    evs = _targets(n)
    h.process(evs[0])
    out = []
    for ev in evs:
        t0 = time.perf_counter()
        h.process(ev)
        if with_snapshot:
            h.snapshot()
        out.append((time.perf_counter() - t0) * 1e6)
    return _stats(out)


def bench_after_bar(n: int) -> dict[str, float]:
    h, closes = warm_handler()
    out = []
    for i in range(n):
        bar = N_BARS + i
        for s in SYMBOLS:
            h.process(bar_env(s, bar, closes[s][-1 - (i % 7)]))
        ev = target_env("BTCUSDT", bar, 0.1 + 0.2 * (i % 2))
        t0 = time.perf_counter()
        h.process(ev)
        out.append((time.perf_counter() - t0) * 1e6)
    return _stats(out)


async def bench_consumer(n: int) -> dict[str, float]:
    h, _ = warm_handler()
    bus = InMemoryBus()
    c = Consumer(bus, h, group="risk", consumer="r0", streams=[SIZING_TARGET],
                 state_key="bench:state", clock=time.time_ns)
    await c.start()
    h.restore(h.snapshot())
    out = []
    for ev in _targets(n):
        await bus.publish(SIZING_TARGET, ev)
        t0 = time.perf_counter()
        await c.step(block_ms=None)
        out.append((time.perf_counter() - t0) * 1e6)
    return _stats(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    res = {
        "decide": bench_decide(a.n, False),
        "decide after bar": bench_after_bar(max(a.n // 10, 100)),
        "decide + snapshot": bench_decide(a.n, True),
        "consumer hop": asyncio.run(bench_consumer(a.n)),
    }
    lib.report(a.json, res,
               f"{'risk decision latency':<22} {'n':>6} {'p50 µs':>9} {'p99 µs':>9} {'mean µs':>9}",
               *(f"{k:<22} {v['n']:>6} {v['p50_us']:>9.1f} {v['p99_us']:>9.1f} {v['mean_us']:>9.1f}"
                 for k, v in res.items()))


if __name__ == "__main__":
    main()
