"""A live bar closing at a funding settlement follows that settlement's rate on the bus, as in
training and replay (invariant 9): ingest's live source against the exchange sim over real
HTTP/WS and Redis, the funding gate polling the sim's funding history when such a bar closes.
The poller's own timed rounds are not running, so only the gate can put the rate first."""

from __future__ import annotations

import asyncio
import json

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, MD_FUNDING
from tm_common.testing.sim import QUIET_FAULTS
from tm_common.testing.wait import wait_for_async
from tm_ingest.domain.bars import INTERVAL_MS
from tm_ingest.sources.funding import FundingPoller
from tm_ingest.sources.funding_gate import FundingGate

from .conftest import SYMS

START = 1_677_628_800_000          # 2023-03-01 00:00 UTC, a settlement (8 h grid)
SETTLE_MS = 8 * 3600 * 1000


def _id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


async def _entries(bus: RedisStreamsBus, stream: str) -> list[tuple[tuple[int, int], dict]]:
    return [(_id(i), json.loads(f["body"])) for i, f in await bus.entries(stream, 10_000)]


def _gates(sim, wait_s: float) -> tuple[list[FundingGate], object, list[tuple[str, str]]]:
    """A factory for ``live_source(gate=)``, the list the gate it makes goes to, and the list
    of the gate's results ``(symbol, held | late)``."""
    made: list[FundingGate] = []

    def make(rest, pub, intervals):
        clock_ms = lambda: int(sim.get("/sim/clock")["now_ms"])  # noqa: E731
        poller = FundingPoller(rest, pub.publish_funding, SYMS,
                               last_published=pub.last_funding_ms, clock_ms=clock_ms)
        made.append(FundingGate(poller, wait_s=wait_s, retry_s=0.1, intervals_ms=intervals,
                                clock_ms=clock_ms, on_result=lambda s, r: results.append((s, r))))
        return made[-1]
    results: list[tuple[str, str]] = []
    return made, make, results


async def _bars_published(bus: RedisStreamsBus, n: int) -> bool:
    return len(await bus.entries(MD_BAR, 10_000)) >= n


async def test_a_settlement_bar_is_published_after_its_rate(sim, live_source):
    made, make, results = _gates(sim, wait_s=30.0)
    async with live_source(START, (0.3, 1.0), gate=make) as (bus, _pub, live):
        await wait_for_async(lambda: _bars_published(bus, len(SYMS)))    # backfill: bar START
        await wait_for_async(lambda: asyncio.sleep(0, live.subscribed))
        for k in range(1, 7):                                     # 24 h: 3 settlements
            sim.advance(1)
            await wait_for_async(lambda k=k: _bars_published(bus, (1 + k) * len(SYMS)))
        bars, rates = await _entries(bus, MD_BAR), await _entries(bus, MD_FUNDING)
        await bus.close()
    rate_at = {(r["instrument"], r["settle_time_ms"]): i for i, r in rates}
    settling = [(i, b) for i, b in bars if (b["open_time_ms"] + INTERVAL_MS) % SETTLE_MS == 0]
    assert len(settling) == 3 * len(SYMS)       # closes 08:00, 16:00, 00:00
    for bar_id, b in settling:
        close = b["open_time_ms"] + INTERVAL_MS
        assert (b["instrument"], close) in rate_at, f"{b['instrument']} {close}: no rate"
        assert rate_at[b["instrument"], close] < bar_id, f"{b['instrument']} {close}: rate after"
    [gate] = made
    assert gate.late == 0 and gate.held == 3 * len(SYMS)
    assert sorted(results) == sorted((s, "held") for s in SYMS for _ in range(3))
    assert live.funding_interval_ms == dict.fromkeys(SYMS, SETTLE_MS)   # from instruments-info


async def test_a_rate_that_does_not_come_delays_its_bar_by_the_wait_only(sim, live_source):
    """The venue's funding history fails (HTTP 503): each settlement bar is published after
    ``wait_s`` without its rate, counted late; the other bars are not held."""
    made, make, results = _gates(sim, wait_s=0.5)
    async with live_source(START, (0.3, 1.0), gate=make) as (bus, _pub, live):
        await wait_for_async(lambda: _bars_published(bus, len(SYMS)))
        await wait_for_async(lambda: asyncio.sleep(0, live.subscribed))
        sim.advance(1)                            # 08:00, a settlement: its rate comes
        await wait_for_async(lambda: _bars_published(bus, 2 * len(SYMS)))
        sim.post("/sim/faults", {**QUIET_FAULTS, "http_5xx_prob": 1.0,
                                 "paths": ["/v5/market/funding/history"]})
        for k in (2, 3):                          # 12:00 (none), 16:00 (a settlement)
            sim.advance(1)
            await wait_for_async(lambda k=k: _bars_published(bus, (1 + k) * len(SYMS)))
        rates = await _entries(bus, MD_FUNDING)
        await bus.close()
    [gate] = made
    assert gate.held == len(SYMS) and gate.late == len(SYMS) and gate.errors >= len(SYMS)
    assert sorted(results) == sorted([(s, "held") for s in SYMS] + [(s, "late") for s in SYMS])
    assert not [r for _, r in rates if r["settle_time_ms"] > START + SETTLE_MS]


async def test_the_live_service_wires_the_gate_into_status_and_metrics(sim, redis_url, namespace):
    """``IngestService`` in live mode: its live source holds settlement bars through the gate,
    counted on ``/status`` ``funding_gate`` and ``tm_ingest_funding_gate_bars_total``;
    ``TM_INGEST_FUNDING_WAIT_S=0`` has no gate."""
    from prometheus_client import CollectorRegistry
    from tm_ingest.config import IngestSettings
    from tm_ingest.service import IngestService

    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    settings = IngestSettings(mode="live", bybit_rest_url=sim.url,
                              bybit_ws_url=sim.ws_url + "/v5/public/linear", symbols="BTCUSDT",
                              backfill_start_ms=START, funding_wait_s=30.0, mark_poll_s=0.0,
                              dvol_enabled=False, db_enabled=False, namespace=namespace,
                              redis_url=redis_url)
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    reg = CollectorRegistry()
    svc = IngestService(settings, bus, repo=None, registry=reg,
                        clock=lambda: int(sim.get("/sim/clock")["now_ms"]) * 1_000_000)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.background()["live"](stop))
    try:
        await wait_for_async(lambda: _bars_published(bus, 1))
        assert svc.live is not None
        await wait_for_async(lambda: asyncio.sleep(0, svc.live.subscribed))
        sim.advance(1)                                   # the bar closing at 08:00
        await wait_for_async(lambda: _bars_published(bus, 2))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await bus.close()
    assert svc.status()["funding_gate"] == {"enabled": True, "wait_s": 30.0, "held": 1,
                                            "late": 0, "errors": 0}
    assert reg.get_sample_value("tm_ingest_funding_gate_bars_total",
                                {"instrument": "BTCUSDT", "result": "held"}) == 1
    off = IngestService(settings.model_copy(update={"funding_wait_s": 0.0}), bus, repo=None,
                        registry=CollectorRegistry())
    off.background()
    assert off.funding_gate is None and off.status()["funding_gate"] == {"enabled": False}
