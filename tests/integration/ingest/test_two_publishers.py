"""Two instances of ingest's publisher on one Redis (a rollout's old and new pod, a standby): each
bar, DVOL day and funding rate is still published once, in order, whoever publishes first. Each
publisher has its own connection, as two processes would."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, MD_DVOL, MD_FUNDING
from tm_common.events import DvolUpdated, FundingRateUpdated
from tm_common.testing.factories import bar_event
from tm_ingest.publisher import BarPublisher

SYMS = ("BTCUSDT", "ETHUSDT")
DAY_MS = 86_400_000
FUNDING_MS = 8 * 3600 * 1000


async def _bodies(bus: RedisStreamsBus, stream: str) -> list[dict]:
    return [json.loads(f["body"]) for _, f in await bus.entries(stream, 10_000)]


CHANGES: list[int] = []     # which publisher said "another instance published first", in order


async def _pair(redis_url: str, namespace: str) -> tuple[list[RedisStreamsBus], list[BarPublisher]]:
    CHANGES.clear()
    buses = [RedisStreamsBus(redis_url, prefix=namespace) for _ in range(2)]
    pubs = [BarPublisher(b, namespace + "state:ingest:publisher",
                         on_state_change=lambda i=i: CHANGES.append(i))
            for i, b in enumerate(buses)]
    for p in pubs:
        await p.load()
    return buses, pubs


async def test_a_publisher_behind_another_publishes_only_what_is_still_new(redis_url, namespace):
    """B read the state before A published bars 0-2; B, offered bars 0-3, publishes only bar
    3 (the old code published 0-2 again from its stale memory)."""
    buses, (a, b) = await _pair(redis_url, namespace)
    bars = [bar_event(s, i).body for i in range(4) for s in SYMS]
    try:
        assert len(await a.publish_bars(bars[:6])) == 6
        assert await b.publish_bars(bars) == bars[6:]
        assert b.stats.state_changes == 1 and CHANGES == [1]     # told (the service's metric)
        assert (b.stats.published, b.stats.duplicates, b.stats.late) == (2, 2, 4)
        assert b.stats.gaps == 0                       # decided on the state that landed
        assert await a.publish_bars(bars) == []        # and A, behind B now, publishes nothing
        got = [(g["instrument"], g["open_time_ms"]) for g in await _bodies(buses[0], MD_BAR)]
    finally:
        for bus in buses:
            await bus.close()
    assert sorted(got) == sorted((x.instrument, x.open_time_ms) for x in bars)
    assert len(got) == len(set(got)) == 8


async def test_dvol_and_funding_are_checked_too(redis_url, namespace):
    buses, (a, b) = await _pair(redis_url, namespace)
    dvol = [DvolUpdated(currency="BTC", day_ms=d * DAY_MS, value=50.0 + d,
                        known_at_ms=(d + 1) * DAY_MS) for d in range(1, 4)]
    rates = [FundingRateUpdated(instrument="BTCUSDT", settle_time_ms=k * FUNDING_MS,
                                rate=Decimal("0.0001")) for k in range(1, 4)]
    try:
        assert len(await a.publish_dvol(dvol[:2])) == 2
        assert await b.publish_dvol(dvol) == dvol[2:]
        assert len(await b.publish_funding(rates[:2])) == 2
        assert await a.publish_funding(rates) == rates[2:]
        assert (a.stats.state_changes, b.stats.state_changes) == (1, 1)
        days = [g["day_ms"] for g in await _bodies(buses[0], MD_DVOL)]
        settles = [g["settle_time_ms"] for g in await _bodies(buses[0], MD_FUNDING)]
    finally:
        for bus in buses:
            await bus.close()
    assert days == [d.day_ms for d in dvol]
    assert settles == [r.settle_time_ms for r in rates]


async def test_two_publishers_racing_publish_each_bar_once_in_order(redis_url, namespace):
    """Both publish overlapping, randomly cut batches of the same bars at once."""
    buses, pubs = await _pair(redis_url, namespace)
    bars = [bar_event(s, i).body for i in range(120) for s in SYMS]
    rng = random.Random(7)

    async def run(p: BarPublisher) -> None:
        at = 0
        while at < len(bars):
            step = rng.randint(1, 12)
            await p.publish_bars(bars[max(0, at - rng.randint(0, 6)): at + step])
            at += step
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(run(p) for p in pubs))
        got = await _bodies(buses[0], MD_BAR)
    finally:
        for bus in buses:
            await bus.close()
    assert sum(p.stats.published for p in pubs) == len(bars)
    assert sum(p.stats.state_changes for p in pubs) > 0      # they did collide
    for sym in SYMS:
        opens = [g["open_time_ms"] for g in got if g["instrument"] == sym]
        assert opens == sorted(opens) and len(opens) == len(set(opens)) == 120
