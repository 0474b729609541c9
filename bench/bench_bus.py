"""Bus hop benchmark: one bus hop (publish → handler entered, and → committed) against a raw
redis-py XADD → XREADGROUP hop, measured the same way in the same run, plus sustained msgs/s.

Signed streams (``tm_common.bus.signing``): the CPU cost of signing and of verifying one
``order.approved`` entry (HMAC-SHA256 over the envelope, µs), and the same hop and burst with
the producer signing and the consumer verifying every entry.

Producer and consumer are separate processes; latency = consumer's time.time_ns() − the
producer's time.time_ns() stamped at publish. Usage: ``python bench/bench_bus.py [--json PATH]``.
Needs TM_BENCH_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import time
import uuid

import _benchlib as lib
import numpy as np
from tm_common.bus import Consumer
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.signing import KeyRing
from tm_common.events import Envelope, OrderApproved
from tm_common.testing.factories import bar

URL = os.environ.get("TM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
HOP_KEYS = {"hop": "k" * 64}          # the signed runs: one key on the hop stream


class _Recorder:
    def __init__(self, n: int):
        self.n, self.entered, self.done = n, [], []

    async def handle(self, ev: Envelope):
        self.entered.append(time.time_ns() - ev.ts_init_ns)
        return []


def _bus_consumer(prefix: str, n: int, q: mp.Queue, signed: bool = False) -> None:
    async def run():
        bus = RedisStreamsBus(URL, prefix=prefix)
        rec = _Recorder(n)
        c = Consumer(bus, rec, group="g", consumer="c", streams=["hop"], block_ms=1000, batch=64,
                     keys=KeyRing(HOP_KEYS) if signed else None)

        class Obs:
            def handled(self, stream, event, secs, now_ns):
                rec.done.append(time.time_ns() - event.ts_init_ns)
                if len(rec.done) >= n:
                    c.stop()

            def __getattr__(self, _):
                return lambda *a, **k: None
        c.obs = Obs()
        await c.start()
        q.put("ready")
        t0 = None
        while not c.stopping:
            await c.step(block_ms=1000)
            if t0 is None and rec.entered:
                t0 = time.perf_counter()
        q.put((rec.entered, rec.done, time.perf_counter() - (t0 or time.perf_counter())))
        await bus.close()
    asyncio.run(run())


def _raw_consumer(prefix: str, n: int, q: mp.Queue) -> None:
    import redis.asyncio as aioredis

    async def run():
        r = aioredis.Redis.from_url(URL)
        key = prefix + "hop"
        with contextlib.suppress(Exception):          # the group exists
            await r.xgroup_create(key, "g", id="0", mkstream=True)
        q.put("ready")
        lat, got, t0 = [], 0, None
        while got < n:
            reply = await r.xreadgroup("g", "c", {key: ">"}, count=64, block=1000)
            now = time.time_ns()
            for _, entries in reply or []:
                for eid, f in entries:
                    lat.append(now - int(f[b"ts_init_ns"]))
                    await r.xack(key, "g", eid)
                    got += 1
                    if t0 is None:
                        t0 = time.perf_counter()
        q.put((lat, lat, time.perf_counter() - t0))
        await r.aclose()
    asyncio.run(run())


async def _produce(prefix: str, n: int, rate: float | None, signed: bool = False) -> None:
    bus = RedisStreamsBus(URL, prefix=prefix, keys=KeyRing(HOP_KEYS) if signed else None)
    b = bar()
    if not rate:                      # burst: pipelined, so the consumer is what is measured
        for start in range(0, n, 500):
            async with bus.r.pipeline(transaction=False) as pipe:
                for i in range(start, min(n, start + 500)):
                    env = Envelope.root(b, key=str(i), correlation_id="x", ts_event_ns=0,
                                        ts_init_ns=time.time_ns())
                    pipe.xadd(bus.key("hop"), bus.keys.fields("hop", env))
                await pipe.execute()
        await bus.close()
        return
    gap = 1 / rate
    nxt = time.perf_counter()
    for i in range(n):
        env = Envelope.root(b, key=str(i), correlation_id="x", ts_event_ns=0, ts_init_ns=time.time_ns())
        await bus.publish("hop", env)
        if gap:
            nxt += gap
            delay = nxt - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    await bus.close()


def measure(kind: str, n: int, rate: float | None) -> dict:
    """``kind``: raw (redis-py), bus, or signed (the bus, signing and verifying each entry)."""
    prefix = f"tmbench:{uuid.uuid4().hex[:8]}:"
    q: mp.Queue = mp.Queue()
    signed = kind == "signed"
    p = (mp.Process(target=_raw_consumer, args=(prefix, n, q)) if kind == "raw" else
         mp.Process(target=_bus_consumer, args=(prefix, n, q, signed)))
    p.start()
    assert q.get(timeout=30) == "ready"
    t0 = time.perf_counter()
    asyncio.run(_produce(prefix, n, rate, signed))
    entered, done, consume_secs = q.get(timeout=300)
    wall = time.perf_counter() - t0
    p.join(30)
    import redis
    r = redis.Redis.from_url(URL)
    for k in r.scan_iter(prefix + "*"):
        r.delete(k)
    ms = lambda xs, pct: float(np.percentile(np.array(xs) / 1e6, pct))
    return {"n": n, "rate": rate, "p50_ms": ms(entered, 50), "p99_ms": ms(entered, 99),
            "commit_p50_ms": ms(done, 50), "commit_p99_ms": ms(done, 99),
            "msgs_per_s": n / max(consume_secs, wall if rate else consume_secs)}


def signing_cost(n: int = 20_000) -> dict:
    """µs per ``order.approved`` entry to sign (encode + HMAC) and to verify, in process."""
    ring = KeyRing({"risk.order": "k" * 64})
    from decimal import Decimal
    env = Envelope.root(OrderApproved(intent_id="0b7c6f3e-8a51-5d2e-9a43-6c1f2b9d7e10",
                                      instrument="BTCUSDT", bar_time_ms=1_700_000_000_000,
                                      side="Buy", qty=Decimal("0.123"), target_qty=Decimal("0.5"),
                                      reason="open"), key="x", correlation_id="BTCUSDT:1",
                        ts_event_ns=1, ts_init_ns=2)
    plain, sign, verify = [], [], []
    fields = ring.fields("risk.order", env)
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}     # as Redis returns them
    for _ in range(n):
        t = time.perf_counter_ns()
        env.to_fields()
        plain.append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        ring.fields("risk.order", env)
        sign.append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        ring.refusal("risk.order", as_bytes)
        verify.append(time.perf_counter_ns() - t)
    us = lambda xs, pct: float(np.percentile(np.array(xs) / 1e3, pct))
    return {"encode_p50_us": us(plain, 50), "sign_p50_us": us(sign, 50),
            "sign_p99_us": us(sign, 99), "verify_p50_us": us(verify, 50),
            "verify_p99_us": us(verify, 99), "entry_bytes": sum(len(v) for v in fields.values())}


def run(n: int = 3000, rate: float = 1000.0, burst: int = 20000) -> dict:
    cost = signing_cost()
    raw = measure("raw", n, rate)
    bus = measure("bus", n, rate)
    signed = measure("signed", n, rate)
    raw_t = measure("raw", burst, None)
    bus_t = measure("bus", burst, None)
    signed_t = measure("signed", burst, None)
    return {
        "sign_p50_us": cost["sign_p50_us"] - cost["encode_p50_us"],
        "sign_p99_us": cost["sign_p99_us"], "verify_p50_us": cost["verify_p50_us"],
        "verify_p99_us": cost["verify_p99_us"], "signed_entry_bytes": cost["entry_bytes"],
        "signed_hop_p50_ms": signed["p50_ms"], "signed_hop_p99_ms": signed["p99_ms"],
        "signed_sustained_msgs_per_s": signed_t["msgs_per_s"],
        "raw_hop_p50_ms": raw["p50_ms"], "raw_hop_p99_ms": raw["p99_ms"],
        "bus_hop_p50_ms": bus["p50_ms"], "bus_hop_p99_ms": bus["p99_ms"],
        "bus_hop_committed_p50_ms": bus["commit_p50_ms"], "bus_hop_committed_p99_ms": bus["commit_p99_ms"],
        "ratio_p50": bus["p50_ms"] / raw["p50_ms"], "ratio_p99": bus["p99_ms"] / raw["p99_ms"],
        "raw_sustained_msgs_per_s": raw_t["msgs_per_s"], "bus_sustained_msgs_per_s": bus_t["msgs_per_s"],
        "paced_rate_per_s": rate, "paced_n": n, "burst_n": burst,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="write results to this file")
    ap.add_argument("-n", type=int, default=3000)
    args = ap.parse_args()
    res = run(n=args.n)
    lib.report(
        args.json, res,
        f"bus hop (publish → handled), paced at {res['paced_rate_per_s']:.0f} msg/s, n={res['paced_n']}",
        f"  raw redis-py XADD→XREADGROUP   p50 {res['raw_hop_p50_ms']:.3f} ms   p99 {res['raw_hop_p99_ms']:.3f} ms",
        f"  bus publish→handler entered    p50 {res['bus_hop_p50_ms']:.3f} ms   p99 {res['bus_hop_p99_ms']:.3f} ms",
        f"  bus publish→committed (ack)    p50 {res['bus_hop_committed_p50_ms']:.3f} ms   p99 {res['bus_hop_committed_p99_ms']:.3f} ms",
        f"  ratio bus/raw                  p50 {res['ratio_p50']:.2f}x   p99 {res['ratio_p99']:.2f}x  (target ≤ 1.5x)",
        f"  sustained: raw {res['raw_sustained_msgs_per_s']:.0f} msg/s, bus {res['bus_sustained_msgs_per_s']:.0f} msg/s",
        f"signed streams: per order.approved entry ({res['signed_entry_bytes']} bytes), in process",
        f"  sign (HMAC over the envelope)  p50 {res['sign_p50_us']:.1f} µs   (p99 of encode+sign {res['sign_p99_us']:.1f} µs)",
        f"  verify                         p50 {res['verify_p50_us']:.1f} µs   p99 {res['verify_p99_us']:.1f} µs",
        f"  signed bus hop                 p50 {res['signed_hop_p50_ms']:.3f} ms   p99 {res['signed_hop_p99_ms']:.3f} ms",
        f"  signed sustained               {res['signed_sustained_msgs_per_s']:.0f} msg/s")


if __name__ == "__main__":
    main()
