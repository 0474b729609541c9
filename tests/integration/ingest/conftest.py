"""The exchange sim as a real process, one per test module, and ingest's live source running
against it, for ingest's live-path tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.sim import QUIET_FAULTS, run_sim
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.funding_gate import FundingGate
from tm_ingest.sources.live import LiveSource
from tm_ingest.sources.rest import BybitRestClient

SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with run_sim(tmp_path_factory.mktemp("sim")) as s:
        yield s


@pytest.fixture
def live_source(sim, redis_url, namespace):
    """``async with live_source(start_ms, backoff_s) as (bus, pub, live)``: the sim reset to
    ``start_ms`` without faults, and :class:`LiveSource` (BTC, ETH, SOL; backfill from
    ``start_ms``) publishing through a :class:`BarPublisher` onto the test's namespace, running
    until the block ends. ``bus`` stays open for the test to read and close. ``gate``: makes
    what runs before each publication from ``(rest, publisher, funding intervals)``."""
    @asynccontextmanager
    async def run(start_ms: int, backoff_s: tuple[float, float],
                  gate: Callable[..., FundingGate] | None = None) -> AsyncIterator[tuple]:
        sim.post("/sim/faults", QUIET_FAULTS)
        sim.post("/sim/reset", {"start_ms": start_ms})
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        pub = BarPublisher(bus, namespace + "state:ingest")
        await pub.load()
        rest = BybitRestClient(sim.url)
        intervals: dict[str, int] = {}
        before = gate(rest, pub, intervals).before if gate else None
        live = LiveSource(sim.ws_url + "/v5/public/linear", rest, pub, SYMS,
                          backfill_start_ms=start_ms, backoff_s=backoff_s,
                          before_publish=before, funding_interval_ms=intervals)
        task = asyncio.create_task(live.run())
        try:
            yield bus, pub, live
        finally:
            live.stop()
            await asyncio.wait_for(task, 10)
            await rest.close()
    return run
