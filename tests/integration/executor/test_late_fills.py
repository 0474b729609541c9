"""Fills that come after the intent was reported (a resting limit order): through the private
WebSocket, or through the REST poller when the WebSocket is off; published once either way."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from tm_common.bus.redis import RedisStreamsBus
from tm_executor.app import ExecutorService

from .conftest import executor_settings, intent_envelope, publish_intents, report_bodies, wait_async


@pytest.mark.parametrize("ws", [True, False], ids=["websocket", "poller"])
async def test_resting_limit_order_fills_later_exactly_once(sim, redis_url, namespace, ws):
    mark = Decimal(sim.get("/sim/clock")["marks"]["BTCUSDT"])
    price = (mark * Decimal("1.003")).quantize(Decimal("0.1"))   # BTC rallies in Jan 2023
    s = executor_settings(sim, redis_url, namespace, ws_enabled=ws,
                          fill_poll_interval_s=0.3 if not ws else 3600)
    svc = ExecutorService(s)
    runtime = svc.runtime()
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    await runtime.start()
    try:
        if ws:
            await wait_async(lambda: _true(svc.ws.connected), 10, "private WS authenticated")
        await publish_intents(bus, [intent_envelope("limit-1", "BTCUSDT", "Sell", "0.005",
                                                    order_type="Limit", price=price)])

        async def types():
            return [t for t, _ in await report_bodies(bus)]
        await wait_async(lambda: _has(types(), "order.reported"), 20, "limit order reported")
        first = await report_bodies(bus)
        assert [(t, b["status"]) for t, b in first] == [("order.reported", "New")]
        assert len(svc.handler.state.open) == 1

        for _ in range(30):                       # close bars until one trades through the price
            sim.advance(1)
            if any(o["orderStatus"] == "Filled" for o in sim.get("/sim/orders")["list"]):
                break
        await wait_async(lambda: _has(types(), "order.filled"), 10, "late fill published")
        await wait_async(lambda: _n_reported(bus, 2), 10, "order closed as Filled")
        if not ws:
            await svc.poller.poll_once()          # the poller sees the same fill again
        else:
            assert svc.ws.forwarded >= 1
    finally:
        await runtime.stop()
    got = await report_bodies(bus)
    fills = [b for t, b in got if t == "order.filled"]
    assert len(fills) == 1 and fills[0]["intent_id"] == "limit-1" and fills[0]["is_maker"]
    assert Decimal(fills[0]["price"]) == price
    assert Counter(t for t, _ in got) == {"order.reported": 2, "order.filled": 1}
    assert [b["status"] for t, b in got if t == "order.reported"] == ["New", "Filled"]
    assert svc.handler.state.open == {}
    await bus.close()


async def _true(v):
    return v


async def _has(coro, t):
    return t in await coro


async def _n_reported(bus, n):
    return sum(1 for t, _ in await report_bodies(bus) if t == "order.reported") >= n
