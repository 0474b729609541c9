"""Ingest's public WebSocket against the simulator over the network: a half-open connection (a
proxy that stops forwarding without closing) is noticed within the read deadline and replaced; a
refused subscription is not taken for a working feed; reconnects wait a jittered backoff; and a
REST bar is closed by the venue's clock, not the host's."""

from __future__ import annotations

import asyncio
import json
import random
import time

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR
from tm_common.testing.netfault import StallProxy
from tm_common.testing.sim import QUIET_FAULTS
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.live import LiveSource
from tm_ingest.sources.rest import BybitRestClient

START = 1_672_531_200_000          # 2023-01-01 00:00
BAR_MS = 4 * 3600 * 1000
SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


async def _until(pred, timeout_s: float, what: str = "condition") -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def _source(sim, redis_url, namespace, ws_url, **kw):
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    pub = BarPublisher(bus, namespace + "state:ingest")
    await pub.load()
    rest = BybitRestClient(sim.url)
    live = LiveSource(ws_url, rest, pub, kw.pop("symbols", SYMS), backfill_start_ms=START, **kw)
    return bus, pub, rest, live


async def test_a_half_open_connection_is_replaced_within_the_read_deadline(sim, redis_url,
                                                                           namespace):
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    port = int(sim.ws_url.rsplit(":", 1)[1])
    proxy = await StallProxy(port).start()
    bus, pub, rest, live = await _source(
        sim, redis_url, namespace, f"ws://127.0.0.1:{proxy.port}/v5/public/linear",
        ping_s=0.3, deadline_pings=3, backoff_s=(0.05, 0.1))
    task = asyncio.create_task(live.run())
    try:
        await _until(lambda: live.subscribed and pub.stats.published >= 3, 20, "subscribed")
        assert live.counters.connects == 1
        proxy.stall()                    # no FIN, no RST: the socket just goes quiet
        t_stall = time.monotonic()
        await _until(lambda: live.counters.connects == 2 and live.subscribed, 10,
                     "a new connection")
        noticed_s = time.monotonic() - t_stall
        # 3 pings of 0.3 s without a pong, then the backoff (< 0.1 s)
        print(f"\nhalf-open connection replaced after {noticed_s:.2f} s")
        assert 0.8 <= noticed_s < 3.0, noticed_s
        assert live.counters.errors.get("ReadDeadlineExceeded") == 1
        # and the new connection is live: the next bar arrives over it
        n = pub.stats.published
        await asyncio.to_thread(sim.advance, 1)
        await _until(lambda: pub.stats.published >= n + 3, 10, "the next bar")
    finally:
        live.stop()
        await asyncio.wait_for(task, 10)
        await rest.close()
        await proxy.close()
    bars = [json.loads(f["body"]) for _, f in await bus.entries(MD_BAR, 1000)]
    await bus.close()
    assert len(bars) == len({(b["instrument"], b["open_time_ms"]) for b in bars})


async def test_a_refused_subscription_reconnects_with_jittered_backoff(sim, redis_url, namespace):
    # the venue refuses every subscribe (overloaded): no connection is taken for a feed
    sim.post("/sim/faults", {**QUIET_FAULTS, "ws_refuse_subscribe": True})
    sim.post("/sim/reset", {"start_ms": START})
    bus, pub, rest, live = await _source(
        sim, redis_url, namespace, sim.ws_url + "/v5/public/linear",
        symbols=["BTCUSDT"], ping_s=0.5, backoff_s=(0.1, 0.4), rng=random.Random(5))
    live.backfill_all = _no_backfill            # the refusals alone, quickly
    task = asyncio.create_task(live.run())
    try:
        await _until(lambda: live.counters.errors.get("SubscribeRefused", 0) >= 4, 15,
                     "four refusals")
    finally:
        live.stop()
        await asyncio.wait_for(task, 10)
        await rest.close()
        await bus.close()
        sim.post("/sim/faults", {**QUIET_FAULTS, "ws_refuse_subscribe": False})
    assert not live.subscribed and live.counters.connects >= 4
    waits = live.retry_waits_s[:4]
    nominal = [0.1, 0.2, 0.4, 0.4]               # doubling, capped: no data was delivered
    assert all(n * 0.5 <= w <= n for w, n in zip(waits, nominal, strict=True)), waits
    assert len({round(w / n, 6) for w, n in zip(waits, nominal, strict=True)}) > 1, \
        "the waits must be jittered, not the nominal backoff"


async def _left_out(sim, redis_url, namespace, symbols: list[str], ended: dict[str, str]) -> None:
    """Ingest connects once, leaves ``ended`` out (named), and the other symbols' bars flow:
    their backfill and the next bar, nothing of the left-out ones."""
    flowing = [s for s in symbols if s not in ended]
    bus, pub, rest, live = await _source(sim, redis_url, namespace,
                                         sim.ws_url + "/v5/public/linear", symbols=symbols,
                                         ping_s=0.5, backoff_s=(0.1, 0.4))
    task = asyncio.create_task(live.run())
    try:
        await _until(lambda: live.subscribed, 20, f"subscribed without {sorted(ended)}")
        assert live.ended == ended
        n = pub.stats.published
        await asyncio.to_thread(sim.advance, 1)
        await _until(lambda: pub.stats.published >= n + len(flowing), 10, "the next bars")
        assert live.counters.connects == 1 and not live.counters.errors
    finally:
        live.stop()
        await asyncio.wait_for(task, 10)
        await rest.close()
    bars = [json.loads(f["body"]) for _, f in await bus.entries(MD_BAR, 1000)]
    await bus.close()
    assert bars and {b["instrument"] for b in bars} == set(flowing)


async def test_a_delisted_symbol_is_left_out_and_the_others_flow(sim, redis_url, namespace):
    """SOLUSDT was delisted before ingest connects (the venue lists it only as ``Closed`` and
    refuses its topic): one subscribe with it would be refused and stop every symbol's bars, so
    ingest reads instruments-info first, leaves it out (named in ``ended``) and the other
    symbols' bars flow over one connection."""
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    original = sim.get("/v5/market/instruments-info", category="linear",
                       symbol="SOLUSDT")["result"]["list"][0]
    sim.post("/sim/instruments", {"list": [{**original, "deliveryTime": str(START)}]})
    try:
        await _left_out(sim, redis_url, namespace, SYMS, {"SOLUSDT": "status Closed"})
    finally:
        sim.post("/sim/instruments", {"list": [original]})   # the session's sim, as it was


async def test_a_symbol_the_venue_does_not_list_is_left_out(sim, redis_url, namespace):
    """XRPUSDT is configured and the venue lists it in no status (it would refuse its topic and
    its klines) while it lists BTCUSDT: ingest leaves it out, named, and BTCUSDT's bars flow."""
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    await _left_out(sim, redis_url, namespace, ["BTCUSDT", "XRPUSDT"],
                    {"XRPUSDT": "not listed in any status"})
    # a venue that lists none of the symbols is not trusted to answer for any
    assert (await BybitRestClient(sim.url).listings(["XRPUSDT"], START)).ended == {}


async def _no_backfill() -> None:
    return None


async def test_rest_bars_are_closed_by_the_venue_s_clock(sim, redis_url, namespace):
    """The host clock is behind the venue (here 2 bars past the start while the simulator has
    closed 8): the bars the venue has closed are all published at once, by its ``time``."""
    sim.post("/sim/faults", QUIET_FAULTS)
    sim.post("/sim/reset", {"start_ms": START})
    await asyncio.to_thread(sim.advance, 8)
    bus, pub, rest, live = await _source(sim, redis_url, namespace,
                                         sim.ws_url + "/v5/public/linear",
                                         clock_ms=lambda: START + 2 * BAR_MS)
    try:
        await live.backfill_all()
        assert rest.server_time_ms == START + 9 * BAR_MS      # the venue's clock: bar 8's close
        bars = [json.loads(f["body"]) for _, f in await bus.entries(MD_BAR, 1000)]
        per = {s: sorted(b["open_time_ms"] for b in bars if b["instrument"] == s) for s in SYMS}
        assert per["BTCUSDT"] == [START + i * BAR_MS for i in range(9)], per["BTCUSDT"]
    finally:
        await rest.close()
        await bus.close()


async def test_a_forming_rest_row_is_not_published_when_the_host_clock_is_ahead(
        tmp_path_factory, redis_url, namespace):
    """The venue answers its forming bar first (as Bybit does; the simulator with
    ``TM_SIM_KLINE_FORMING_ROW``) and the host clock is ahead of the venue (here the wall clock,
    years past the replay): only the bars the venue has closed are published."""
    from tm_common.testing.sim import run_sim

    with run_sim(tmp_path_factory.mktemp("forming"), TM_SIM_KLINE_FORMING_ROW="true") as fsim:
        fsim.post("/sim/faults", QUIET_FAULTS)
        fsim.post("/sim/reset", {"start_ms": START})
        await asyncio.to_thread(fsim.advance, 4)
        rows = fsim.get("/v5/market/kline", category="linear", symbol="BTCUSDT",
                        interval="240", limit=10)["result"]["list"]
        assert int(rows[0][0]) == START + 5 * BAR_MS          # the forming bar comes first
        bus, pub, rest, live = await _source(fsim, redis_url, namespace,
                                             fsim.ws_url + "/v5/public/linear")
        try:
            await live.backfill_all()
            bars = [json.loads(f["body"]) for _, f in await bus.entries(MD_BAR, 1000)]
        finally:
            await rest.close()
            await bus.close()
    btc = sorted(b["open_time_ms"] for b in bars if b["instrument"] == "BTCUSDT")
    assert btc == [START + i * BAR_MS for i in range(5)], btc
