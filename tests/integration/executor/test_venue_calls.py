"""Two venue calls per market order, counted by the venue over HTTP: a first handling sends the
order without looking it up first (``tm_common.bus.handling.first_handling``), then asks for its
executions; a filled order is reported without asking for its state (invariant 60)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tm_common.bus.redis import RedisStreamsBus

from .conftest import (
    intent_envelope,
    publish_intents,
    report_bodies,
    terminal_by_intent,
    wait_sync,
)

ORDER_PATHS = ("/v5/order/create", "/v5/execution/list", "/v5/order/realtime",
               "/v5/order/history")


def order_calls(sim) -> Counter:
    """Requests the venue answered per order path so far (its ``/metrics``)."""
    text = httpx.get(sim.url + "/metrics", timeout=10).text
    calls: Counter = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "tm_exchange_sim_requests":
            for s in family.samples:
                if s.name.endswith("_total") and s.labels["path"] in ORDER_PATHS:
                    calls[s.labels["path"]] += int(s.value)
    return calls


def test_a_market_order_costs_two_venue_calls(sim, redis_url, namespace, executor_factory):
    executor = executor_factory(sim, redis_url, namespace)
    # the start-up reconciliation lists the open orders (order/realtime): counted before
    executor.wait_for(lambda: executor.status()["extra"]["reconciliation"]["runs"] >= 1,
                      what="the start-up reconciliation")
    before = order_calls(sim)
    ids = [f"calls-{i}" for i in range(3)]
    # one bar, closing at 04:00 UTC: not a funding time, where the executor also asks the venue
    # for funding executions (handler._funding)
    intents = [intent_envelope(i, qty="0.001") for i in ids]

    async def publish_and_read(publish: bool):
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            if publish:
                await publish_intents(bus, intents)
            return await report_bodies(bus)
        finally:
            await bus.close()

    asyncio.run(publish_and_read(True))
    wait_sync(lambda: all(terminal_by_intent(asyncio.run(publish_and_read(False)))[i] for i in ids),
              timeout_s=20, what="a report of every intent")
    ends = {b["intent_id"]: b.get("status") or b.get("reason") for t, b in
            asyncio.run(publish_and_read(False)) if t in ("order.reported", "order.rejected")}
    assert ends == {i: "Filled" for i in ids}
    spent = order_calls(sim) - before
    assert dict(spent) == {"/v5/order/create": 3, "/v5/execution/list": 3}, dict(spent)
