"""Ingest's live WebSocket path against the exchange sim over real HTTP/WS and real Redis."""

import asyncio
import json

from tm_common.bus.streams import MD_BAR
from tm_common.history import load_bars
from tm_ingest.domain.bars import INTERVAL_MS

SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
START = 1_672_531_200_000          # 2023-01-01 00:00


async def wait_for(pred, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def published(bus):
    return [json.loads(f["body"]) for _, f in await bus.entries(MD_BAR, 100_000)]


async def test_drop_mid_run_backfill_fills_hole_none_missing_none_twice(sim, live_source):
    async with live_source(START, backoff_s=(0.3, 1.0)) as (bus, _pub, live):
        async def count_is(n):
            return len(await published(bus)) >= n
        await wait_for(lambda: count_is(3))                 # cold-start backfill: bar START
        await asyncio.sleep(0.3)                            # subscription in place
        for _ in range(4):                                  # live bars over the WebSocket
            sim.advance(1)
        await wait_for(lambda: count_is(15))
        sim.post("/sim/faults", {"drop_ws_now": True})      # drop, then bars while disconnected
        for _ in range(5):
            sim.advance(1)
        await wait_for(lambda: count_is(30))
        for _ in range(3):
            sim.advance(1)
        await wait_for(lambda: count_is(39))
        await asyncio.sleep(0.3)
    got = await published(bus)
    last = START + 12 * INTERVAL_MS
    expected = sorted(((s, b.open_time_ms, b.close) for s in SYMS for b in load_bars(s, START, last)),
                      key=lambda x: (x[1], x[0]))
    assert sorted((g["instrument"], g["open_time_ms"], g["close"]) for g in got) == \
        sorted(expected)
    assert len(got) == len({(g["instrument"], g["open_time_ms"]) for g in got}) == 39
    for s in SYMS:                                   # per instrument, strictly in order
        times = [g["open_time_ms"] for g in got if g["instrument"] == s]
        assert times == sorted(times)
    assert live.counters.connects >= 2 and live.counters.backfilled >= 3 + 15 - 12
    assert {g["source"] for g in got} >= {"live", "backfill"}
    await bus.close()
