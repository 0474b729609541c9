"""A live bar closing at a funding settlement follows that settlement's rate on the bus, as in
training and replay (invariant 9): ingest's live source against the exchange sim over real
HTTP/WS and Redis, the funding gate polling the sim's funding history when such a bar closes.
The poller's own timed rounds are not running, so only the gate can put the rate first."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, MD_FUNDING
from tm_common.testing.sim import QUIET_FAULTS
from tm_ingest.domain.bars import INTERVAL_MS
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.funding import FundingPoller
from tm_ingest.sources.funding_gate import FundingGate
from tm_ingest.sources.live import LiveSource
from tm_ingest.sources.rest import BybitRestClient

SYMS = ["BTCUSDT", "ETHUSDT"]
START = 1_677_628_800_000          # 2023-03-01 00:00 UTC, a settlement (8 h grid)
SETTLE_MS = 8 * 3600 * 1000


def _id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


async def _entries(bus: RedisStreamsBus, stream: str) -> list[tuple[tuple[int, int], dict]]:
    return [(_id(i), json.loads(f["body"])) for i, f in await bus.entries(stream, 10_000)]


async def _until(pred, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def _live(sim, redis_url, namespace, *, wait_s: float | None):
    """The sim reset to START; the live source with the gate (``wait_s``; None: no gate)."""
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    pub = BarPublisher(bus, namespace + "state:ingest:publisher")
    await pub.load()
    rest = BybitRestClient(sim.url)
    clock_ms = lambda: int(sim.get("/sim/clock")["now_ms"])  # noqa: E731
    poller = FundingPoller(rest, pub.publish_funding, SYMS, last_published=pub.last_funding_ms,
                           clock_ms=clock_ms)
    intervals: dict[str, int] = {}
    gate = (FundingGate(poller, wait_s=wait_s, retry_s=0.1, intervals_ms=intervals,
                        clock_ms=clock_ms) if wait_s is not None else None)
    live = LiveSource(sim.ws_url + "/v5/public/linear", rest, pub, SYMS,
                      backfill_start_ms=START - INTERVAL_MS, backoff_s=(0.3, 1.0),
                      before_publish=gate.before if gate else None, funding_interval_ms=intervals)
    task = asyncio.create_task(live.run())
    try:
        yield bus, live, gate
    finally:
        live.stop()
        await asyncio.wait_for(task, 10)
        await rest.close()
        await bus.close()


async def _run_six_bars(sim, bus, live) -> None:
    async def bars_published(n: int) -> bool:
        return len(await bus.entries(MD_BAR, 10_000)) >= n
    await _until(lambda: bars_published(2 * len(SYMS)))     # backfill: the bars before START
    await _until(lambda: asyncio.sleep(0, live.subscribed))
    for k in range(1, 7):                                   # 24 h of live bars: 3 settlements
        sim.advance(1)
        await _until(lambda k=k: bars_published((2 + k) * len(SYMS)))


def _settlement_bars(bars: list) -> list:
    return [(i, b) for i, b in bars if (b["open_time_ms"] + INTERVAL_MS) % SETTLE_MS == 0]


async def test_a_settlement_bar_is_published_after_its_rate(sim, redis_url, namespace):
    async with _live(sim, redis_url, namespace, wait_s=30.0) as (bus, live, gate):
        await _run_six_bars(sim, bus, live)
        bars, rates = await _entries(bus, MD_BAR), await _entries(bus, MD_FUNDING)
    rate_at = {(r["instrument"], r["settle_time_ms"]): i for i, r in rates}
    settling = _settlement_bars(bars)
    assert len(settling) == 4 * len(SYMS)       # closes 00:00 (backfill), 08:00, 16:00, 00:00
    for bar_id, b in settling:
        close = b["open_time_ms"] + INTERVAL_MS
        assert (b["instrument"], close) in rate_at, f"{b['instrument']} {close}: no rate"
        assert rate_at[b["instrument"], close] < bar_id, f"{b['instrument']} {close}: rate after"
    assert gate is not None and gate.late == 0 and gate.held >= 3 * len(SYMS)
    assert live.funding_interval_ms == {s: SETTLE_MS for s in SYMS}     # from instruments-info


async def test_a_rate_that_does_not_come_delays_its_bar_by_the_wait_only(sim, redis_url,
                                                                        namespace):
    """The venue's funding history fails (HTTP 503): each settlement bar is published after
    ``wait_s`` without its rate, counted late; the other bars are not held."""
    async with _live(sim, redis_url, namespace, wait_s=0.5) as (bus, live, gate):
        async def bars_published(n: int) -> bool:
            return len(await bus.entries(MD_BAR, 10_000)) >= n
        await _until(lambda: bars_published(2 * len(SYMS)))
        await _until(lambda: asyncio.sleep(0, live.subscribed))
        sim.post("/sim/faults", {**QUIET_FAULTS, "http_5xx_prob": 1.0,
                                 "paths": ["/v5/market/funding/history"]})
        for k in (1, 2):                          # 04:00 (no settlement), 08:00 (settlement)
            sim.advance(1)
            await _until(lambda k=k: bars_published((2 + k) * len(SYMS)))
        rates = await _entries(bus, MD_FUNDING)
    assert gate is not None
    assert gate.late == len(SYMS) and gate.errors >= len(SYMS)
    assert not [r for _, r in rates if r["settle_time_ms"] > START]
