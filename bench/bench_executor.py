"""Executor benchmark against the exchange sim over real HTTP and Redis.

1. ``place_order`` round trip, pybit → sim → pybit (one market order per call, sides
   alternating so that margin stays flat), measured around the pybit call.
2. Order round trip: an ``OrderApproved`` published to ``risk.order`` → the executor's
   ``OrderReported`` committed on ``exec.report`` (lookup by orderLinkId, place, order state,
   executions, commit with the ack). The executor runs as a real process
   (``python -m tm_executor``); intents are sent one at a time.

Usage: ``python bench/bench_executor.py [-n 300] [--json PATH]``. Redis: TM_BENCH_REDIS_URL, or
an embedded server when unset.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from decimal import Decimal

import _benchlib as lib
import httpx
import numpy as np
import redis.asyncio as aioredis
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import EXEC_REPORT, MD_BAR, RISK_ORDER
from tm_common.events import BarClosed, Envelope, OrderApproved
from tm_common.testing.redis import delete_namespace, embedded_redis, free_port
from tm_common.testing.sim import KEY, SECRET, run_sim

START_MS = 1_672_531_200_000


H4_MS = 4 * 3600 * 1000


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs), p))


def bench_place_order(sim, n: int) -> list[float]:
    session = sim.session()
    out = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        session.place_order(category="linear", symbol="BTCUSDT", side="Buy" if i % 2 else "Sell",
                            orderType="Market", qty="0.001", orderLinkId=f"bench-{i}")
        if i >= 20:                                   # warm-up: connection, JIT-ish caches
            out.append((time.perf_counter() - t0) * 1e3)
    return out


async def bench_round_trip(url: str, prefix: str, n: int) -> list[float]:
    bus = RedisStreamsBus(url, prefix=prefix)
    # redis-py 8 defaults socket_timeout to 5 s: longer than a blocking XREAD may wait
    r = aioredis.Redis.from_url(url, socket_timeout=60)
    key = prefix + EXEC_REPORT
    last = "$"
    out = []
    try:
        # the bar that closed last by the wall clock: the executor's guard (live mode) refuses
        # an intent for an older bar as stale
        bar_ms = time.time_ns() // 1_000_000 // H4_MS * H4_MS - H4_MS
        # ... and that bar's close, which its notional caps are checked against
        bar = BarClosed(instrument="ETHUSDT", open_time_ms=bar_ms,
                        close_time_ms=bar_ms + H4_MS - 1, open=Decimal(1200),
                        high=Decimal(1200), low=Decimal(1200), close=Decimal(1200),
                        volume=Decimal(1), source="replay")
        await bus.publish(MD_BAR, Envelope.root(bar, key=f"bar-{bar_ms}",
                                                correlation_id=f"ETHUSDT:{bar_ms}",
                                                ts_event_ns=bar_ms * 1_000_000,
                                                ts_init_ns=time.time_ns()))
        for i in range(n + 10):
            body = OrderApproved(intent_id=f"bench-intent-{i}", instrument="ETHUSDT",
                                 bar_time_ms=bar_ms, side="Buy" if i % 2 else "Sell",
                                 qty=Decimal("0.01"), target_qty=Decimal("0.01"))
            env = Envelope.root(body, key=body.intent_id, correlation_id=f"ETHUSDT:{bar_ms}",
                                ts_event_ns=bar_ms * 1_000_000, ts_init_ns=time.time_ns())
            t0 = time.perf_counter()
            await bus.publish(RISK_ORDER, env)
            done = False
            while not done:
                reply = await r.xread({key: last}, block=30_000, count=10)
                if not reply:
                    raise RuntimeError("no OrderReported within 30 s")
                for eid, fields in reply[0][1]:
                    last = eid
                    if fields[b"type"] == b"order.reported":
                        done = True
            if i >= 10:
                out.append((time.perf_counter() - t0) * 1e3)
    finally:
        await bus.close()
        await r.aclose()
    return out


def start_executor(sim, url: str, prefix: str, log_path: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    from tm_common.settings import env_names
    from tm_executor.config import ExecutorSettings

    # by setting name: the variable names come from the settings class, so they cannot drift
    names = env_names(ExecutorSettings)
    env.update({names[k]: v for k, v in {
        "redis_url": url, "namespace": prefix, "http_port": str(port),
        "consumer_name": "executor-bench", "bybit_rest_url": sim.url,
        "bybit_private_ws_url": sim.ws_url + "/v5/private",
        "bybit_api_key": KEY, "bybit_api_secret": SECRET, "read_block_ms": "1000",
        "log_level": "WARNING", "reconcile_interval_s": "3600",
        "fill_poll_interval_s": "3600"}.items()})
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tm_executor"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    with open(log_path, errors="replace") as fh:        # the temp dir goes away
        tail = "".join(fh.readlines()[-30:])
    try:
        why = httpx.get(base + "/readyz", timeout=1).text[:500]
    except httpx.HTTPError:
        why = "(no answer)"
    raise RuntimeError(f"executor did not become ready (/readyz: {why}); log tail:\n{tail}")


def run(n: int) -> dict:
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-exec-"))
        sim = stack.enter_context(run_sim(tmp))
        url = os.environ.get("TM_BENCH_REDIS_URL") or stack.enter_context(embedded_redis())
        sim.post("/sim/reset", {"start_ms": START_MS, "initial_balance": "1000000"})
        place = bench_place_order(sim, n)
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        log_path = os.path.join(tmp, "executor.log")
        proc, base = start_executor(sim, url, prefix, log_path)
        try:
            try:
                rt = asyncio.run(bench_round_trip(url, prefix, n))
            except Exception:
                with open(log_path, errors="replace") as fh:       # the temp dir goes away
                    print("executor log (tail):\n" + "".join(fh.readlines()[-40:]), flush=True)
                raise
            calls = httpx.get(base + "/status", timeout=5).json()["extra"]["venue_calls"]
            per_call = lib.endpoint_means_ms(httpx.get(base + "/metrics", timeout=5).text)
        finally:
            proc.terminate()
            proc.wait(20)
            delete_namespace(url, prefix)
    return {"n": n,
            "place_order_p50_ms": pct(place, 50), "place_order_p99_ms": pct(place, 99),
            "round_trip_p50_ms": pct(rt, 50), "round_trip_p99_ms": pct(rt, 99),
            "venue_calls_per_intent": calls / (n + 10), "venue_call_mean_ms": per_call}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="write results to this file")
    ap.add_argument("-n", type=int, default=300)
    args = ap.parse_args()
    res = run(args.n)
    lib.report(args.json, res,
               f"executor benchmark, n={res['n']} (sequential, local sim, loopback Redis)",
               f"  pybit place_order → sim → pybit      p50 {res['place_order_p50_ms']:.2f} ms   "
               f"p99 {res['place_order_p99_ms']:.2f} ms",
               f"  intent published → OrderReported     p50 {res['round_trip_p50_ms']:.2f} ms   "
               f"p99 {res['round_trip_p99_ms']:.2f} ms   "
               f"({res['venue_calls_per_intent']:.2f} venue calls per intent, background included)",
               f"  mean venue call in the executor (ms): {res['venue_call_mean_ms']}")


if __name__ == "__main__":
    main()
