"""Intra-bar marks: ingest's ticker poller against the exchange sim over HTTP, into the real
Redis; the service's own wiring in live mode; off in replay and with ``TM_INGEST_MARK_POLL_S=0``.

The sim's ticker (history mode) answers the close of the bar at its clock as ``markPrice``; a
mark is stamped with the poller's clock (here the sim's market time, as the funding tests do).
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from pydantic import ValidationError
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_MARK
from tm_common.history import load_bars
from tm_common.testing.sim import QUIET_FAULTS
from tm_ingest.config import IngestSettings
from tm_ingest.publisher import BarPublisher
from tm_ingest.service import IngestService
from tm_ingest.sources.marks import MarkPoller
from tm_ingest.sources.rest import BybitRestClient

SYMS = ("BTCUSDT", "ETHUSDT")
START = 1_677_628_800_000          # 2023-03-01 00:00 UTC: the sim's clock
BAR_MS = 4 * 3600 * 1000


def sim_clock(sim) -> tuple[int, int]:
    doc = sim.get("/sim/clock")
    return int(doc["clock_ms"]), int(doc["now_ms"])


def close_at(sym: str, open_ms: int) -> Decimal:
    return next(Decimal(str(b.close)) for b in load_bars(sym) if b.open_time_ms == open_ms)


async def marks(bus) -> list[dict]:
    return [json.loads(f["body"]) | {"id": f["event_id"], "ts": int(f["ts_event_ns"])}
            for _, f in await bus.entries(MD_MARK, 10_000)]


async def test_the_poller_publishes_each_ticker_mark_once_per_time(sim, redis_url, namespace):
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    pub = BarPublisher(bus, namespace + "state:ingest")
    rest = BybitRestClient(sim.url)
    errors: list[str] = []
    poller = MarkPoller(rest, pub.publish_marks, SYMS, clock_ms=lambda: sim_clock(sim)[1],
                        on_error=errors.append)
    try:
        clock, now = sim_clock(sim)
        first = await poller.poll_once()
        assert [(m.instrument, m.at_ms) for m in first] == [(s, now) for s in SYMS]
        assert [m.mark_price for m in first] == [close_at(s, clock) for s in SYMS]
        assert await poller.poll_once() == []               # the clock has not moved
        sim.advance(1)
        second = await poller.poll_once()
        assert [(m.instrument, m.at_ms, m.mark_price) for m in second] == [
            (s, now + BAR_MS, close_at(s, clock + BAR_MS)) for s in SYMS]
        # the venue fails: counted with the reason, nothing published, the next round works
        sim.post("/sim/faults", {**QUIET_FAULTS, "http_5xx_prob": 1.0,
                                 "paths": ["/v5/market/tickers"]})
        sim.advance(1)
        assert await poller.poll_once() == []
        assert poller.errors == 2 and len(errors) == 2 and "HTTP 5" in errors[0]
        sim.post("/sim/faults", QUIET_FAULTS)
        assert len(await poller.poll_once()) == 2
        got = await marks(bus)
        assert len(got) == 6 == len({m["id"] for m in got})
        assert all(m["ts"] == m["at_ms"] * 1_000_000 and m["source"] == "live" for m in got)
        assert pub.stats.marks_published == 6
        # an unknown symbol is the venue's refusal, said in one line; the others still poll
        odd = MarkPoller(rest, pub.publish_marks, ("NOPEUSDT", "BTCUSDT"),
                         on_error=errors.append)     # the wall clock: a new time
        assert [m.instrument for m in await odd.poll_once()] == ["BTCUSDT"]
        assert "ticker NOPEUSDT: retCode 10001" in errors[-1]
    finally:
        await rest.close()
        await bus.close()


async def test_live_ingest_polls_marks_on_its_own_and_replay_never_does(sim, redis_url, namespace):
    """The service's wiring (``background()["marks"]``), status and metrics; replay and
    ``mark_poll_s=0`` have no poller and say why."""
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    settings = IngestSettings(mode="live", bybit_rest_url=sim.url, symbols="BTCUSDT,ETHUSDT",
                              mark_poll_s=0.2, dvol_enabled=False, funding_enabled=False,
                              db_enabled=False, namespace=namespace, redis_url=redis_url)
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    from prometheus_client import CollectorRegistry
    try:
        reg = CollectorRegistry()
        svc = IngestService(settings, bus, repo=None, registry=reg,
                            clock=lambda: sim_clock(sim)[1] * 1_000_000)
        tasks = svc.background()
        assert "marks" in tasks
        stop = asyncio.Event()
        task = asyncio.create_task(tasks["marks"](stop))
        await asyncio.sleep(0.6)
        sim.advance(1)                                      # a new venue time: new marks
        await asyncio.sleep(0.8)
        stop.set()
        await asyncio.wait_for(task, 10)
        st = svc.status()["marks"]
        assert st["enabled"] and st["poll_s"] == 0.2 and st["rounds"] >= 4 and st["errors"] == 0
        _, now = sim_clock(sim)
        assert st["last_at_ms"] == {"BTCUSDT": now, "ETHUSDT": now}
        got = await marks(bus)
        assert sorted((m["instrument"], m["at_ms"]) for m in got) == sorted(
            (s, t) for s in ("BTCUSDT", "ETHUSDT") for t in (now - BAR_MS, now))
        assert reg.get_sample_value("tm_ingest_marks_published_total",
                                    {"instrument": "BTCUSDT"}) == 2
    finally:
        await bus.close()
    off = IngestService(settings.model_copy(update={"mark_poll_s": 0.0}), bus, repo=None,
                        registry=CollectorRegistry())
    assert "marks" not in off.background()
    assert off.status()["marks"] == {"enabled": False, "off_because": "TM_INGEST_MARK_POLL_S=0"}
    replay = IngestService(settings.model_copy(update={"mode": "replay"}), bus, repo=None,
                           registry=CollectorRegistry())
    assert "marks" not in replay.background()
    assert replay.status()["marks"] == {"enabled": False, "off_because": "mode replay"}


def test_a_poll_interval_over_60_s_is_refused_by_name():
    with pytest.raises(ValidationError, match="mark_poll_s"):
        IngestSettings(mark_poll_s=61)
    assert IngestSettings().mark_poll_s == 60
