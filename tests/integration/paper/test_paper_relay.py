"""The paper venue's feed: ``md.bar`` and ``md.funding`` on Redis → a live-feed exchange sim over
HTTP (:class:`tm_app.paper_relay.BarRelay`), with malformed entries skipped."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from pybit.unified_trading import HTTP
from tm_app.paper_relay import BarRelay
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import MD_BAR, MD_FUNDING
from tm_common.events import BarClosed, Envelope, FundingRateUpdated
from tm_common.history import BAR_INTERVAL_MS
from tm_common.testing.fixtures import private_tmp_path  # noqa: F401 - replaces tmp_path here
from tm_common.testing.sim import KEY, SECRET, run_sim
from tm_common.testing.wait import wait_for

T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC; its bar closes 04:00, the next 08:00


def _bar(open_ms: int, close: str) -> Envelope:
    c = Decimal(close)
    body = BarClosed(instrument="BTCUSDT", open_time_ms=open_ms,
                     close_time_ms=open_ms + BAR_INTERVAL_MS, open=c, high=c * Decimal("1.01"),
                     low=c * Decimal("0.99"), close=c, volume=Decimal(5))
    return Envelope.root(body, key=f"BTCUSDT:{open_ms}", correlation_id=f"BTCUSDT:{open_ms}",
                         ts_event_ns=(open_ms + BAR_INTERVAL_MS) * 10**6, ts_init_ns=1)


def _publish(redis_url: str, namespace: str, *items: tuple[str, Envelope | dict]) -> None:
    async def go() -> None:
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            for stream, env in items:
                if isinstance(env, Envelope):
                    await bus.publish(stream, env)
                else:
                    await bus.publish_raw(stream, env)
        finally:
            await bus.close()
    asyncio.run(go())


def test_bars_and_funding_reach_the_paper_venue(tmp_path, redis_url, namespace):
    with run_sim(tmp_path, TM_SIM_FEED="live") as venue:
        relay = BarRelay(redis_url, namespace, venue.url, block_ms=100, check_every_s=0.5)
        relay.start()
        try:
            _publish(redis_url, namespace, (MD_BAR, {"type": "bar.closed", "body": "{"}),
                     (MD_BAR, _bar(T0, "94000")))
            wait_for(lambda: venue.get("/sim/clock")["marks"] == {"BTCUSDT": "94000"},
                     timeout_s=20, what="the first bar at the venue")
            http = HTTP(api_key=KEY, api_secret=SECRET, max_retries=1)
            http.endpoint = venue.url
            http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                             qty="0.1")
            due = T0 + 2 * BAR_INTERVAL_MS               # 08:00 UTC: a funding time
            rate = FundingRateUpdated(instrument="BTCUSDT", settle_time_ms=due,
                                      rate=Decimal("0.0001"))
            _publish(redis_url, namespace,
                     (MD_FUNDING, Envelope.root(rate, key=f"BTCUSDT:{due}", correlation_id="f",
                                                ts_event_ns=due * 10**6, ts_init_ns=1)),
                     (MD_BAR, _bar(T0 + BAR_INTERVAL_MS, "95000")))

            def funding() -> list[dict]:
                return [e for e in venue.get("/sim/executions")["list"] if e["execType"] == "Funding"]
            fund = wait_for(funding, timeout_s=20, what="funding settled at the 08:00 close")
            assert [(f["execTime"], Decimal(f["execPrice"]), Decimal(f["execFee"])) for f in fund] \
                == [(str(due), Decimal(95000), Decimal("0.95"))]   # long pays 0.1 x 95000 x 1e-4
            trade = [e for e in venue.get("/sim/executions")["list"] if e["execType"] == "Trade"][0]
            assert Decimal(trade["execPrice"]) == Decimal("94018.8")   # + 2 bps, 0.1 tick up
            assert relay.counts.bars == 2 and relay.counts.funding == 1
            assert not relay.counts.errors, relay.counts.errors
        finally:
            relay.stop()
        assert not relay.alive
