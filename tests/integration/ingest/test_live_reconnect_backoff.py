"""Ingest's live WebSocket reconnects promptly after each of many drops (the fault drill's WS
drops): the reconnect backoff starts over once a connection has delivered data, instead of
doubling for the life of the process (0.2 s, 0.4 s, ... 30 s after a handful of drops)."""

import asyncio
import json
import time

from tm_common.bus.streams import MD_BAR

START = 1_672_531_200_000          # 2023-01-01 00:00
DROPS = 7                          # without the reset the 7th reconnect would wait 12.8 s


async def _until(pred, timeout_s: float) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"not within {timeout_s}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_backoff_starts_over_after_a_connection_that_delivered(sim, live_source):
    reconnect_s = []
    async with live_source(START, backoff_s=(0.2, 30.0)) as (bus, pub, live):
        await _until(lambda: pub.stats.published >= 3 and live.connected, 20)
        for _ in range(DROPS):
            await asyncio.sleep(0.3)                         # subscription in place
            n = pub.stats.published
            await asyncio.to_thread(sim.advance, 1)          # a bar over the WebSocket
            await _until(lambda n=n: pub.stats.published >= n + 3, 10)
            connects = live.counters.connects
            await asyncio.to_thread(sim.post, "/sim/faults", {"drop_ws_now": True})
            reconnect_s.append(await _until(
                lambda c=connects: live.counters.connects > c and live.connected, 10))
    bars = [json.loads(f["body"]) for _, f in await bus.entries(MD_BAR, 1000)]
    await bus.close()
    assert max(reconnect_s) < 2.0, reconnect_s
    assert live.counters.connects == DROPS + 1
    assert len(bars) == 3 * (DROPS + 1) == len({(b["instrument"], b["open_time_ms"]) for b in bars})
