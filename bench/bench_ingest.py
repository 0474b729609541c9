"""Lockstep replay through ingest alone: the full shipped history of three instruments published
bar time by bar time, each step waiting until one consumer group (a no-op consumer in its own
process, like any service) has handled it. Prints bars/s and seconds.

Usage: ``python bench/bench_ingest.py [--json PATH] [--bars N]``; TM_BENCH_REDIS_URL (default
redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
import uuid

import _benchlib as lib
from tm_common.bus import Consumer
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.replay import GroupsIdleProbe, ReplaySource, history_bars

URL = os.environ.get("TM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


class _Noop:
    async def handle(self, ev):
        return []


def _consumer(prefix: str, stop_after: int, q) -> None:
    async def run():
        bus = RedisStreamsBus(URL, prefix=prefix)
        c = Consumer(bus, _Noop(), group="bench", consumer="c", streams=[MD_BAR], block_ms=1000)
        await c.start()
        q.put("ready")
        while c.handled_count < stop_after:
            await c.step(block_ms=1000)
        await bus.close()
    asyncio.run(run())


async def _replay(prefix: str, bars) -> float:
    bus = RedisStreamsBus(URL, prefix=prefix)
    pub = BarPublisher(bus, prefix + "state:ingest")
    src = ReplaySource(pub, bars, probe=GroupsIdleProbe(bus, [MD_BAR], poll_s=0.0002))
    t0 = time.perf_counter()
    await src.run()
    secs = time.perf_counter() - t0
    await bus.close()
    return secs


def run(limit: int | None = None) -> dict:
    bars = history_bars(SYMS, None, None)
    if limit:
        bars = sorted(bars, key=lambda b: b.open_time_ms)[: limit * 3]
    prefix = f"tmbench:{uuid.uuid4().hex[:8]}:"
    q = mp.Queue()
    p = mp.Process(target=_consumer, args=(prefix, len(bars), q))
    p.start()
    assert q.get(timeout=30) == "ready"
    secs = asyncio.run(_replay(prefix, bars))
    p.join(30)
    import redis
    r = redis.Redis.from_url(URL)
    for k in r.scan_iter(prefix + "*"):
        r.delete(k)
    steps = len({b.open_time_ms for b in bars})
    return {"ingest_lockstep_bars": len(bars), "ingest_lockstep_steps": steps,
            "ingest_lockstep_secs": secs, "ingest_lockstep_bars_per_s": len(bars) / secs,
            "ingest_lockstep_ms_per_step": secs / steps * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--bars", type=int, default=None, help="bar times to replay (default: all)")
    args = ap.parse_args()
    res = run(args.bars)
    lib.report(args.json, res,
               f"lockstep replay through ingest alone: {res['ingest_lockstep_bars']} bars "
               f"({res['ingest_lockstep_steps']} bar times) in {res['ingest_lockstep_secs']:.2f} s = "
               f"{res['ingest_lockstep_bars_per_s']:.0f} bars/s, "
               f"{res['ingest_lockstep_ms_per_step']:.2f} ms/step")


if __name__ == "__main__":
    main()
