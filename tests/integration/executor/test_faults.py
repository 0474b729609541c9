"""Idempotency under venue faults, over real HTTP (pybit → sim) and real Redis: with rate
limits, 5xx and timeouts (processed, answer held past the client's timeout) switched on for the
whole run, every intent ends reported or rejected and the venue holds exactly one order per
accepted intent."""

from __future__ import annotations

import time
from collections import Counter

from tm_common.bus.redis import RedisStreamsBus
from tm_executor.app import ExecutorService

from .conftest import (
    executor_settings,
    intent_envelope,
    link_of,
    publish_intents,
    report_bodies,
    terminal_by_intent,
    venue_orders_by_link,
    wait_async,
)

FAULTS = {"rate_limit_prob": 0.1, "http_5xx_prob": 0.1, "timeout_prob": 0.1, "timeout_s": 1.2,
          "seed": 20261121}


def intents():
    out = []
    for i in range(30):                              # accepted: market orders on BTC and ETH
        inst, qty = ("BTCUSDT", "0.002") if i % 2 else ("ETHUSDT", "0.03")
        out.append(intent_envelope(f"fault-{i}", inst, "Buy" if i % 3 else "Sell", qty, bar=i))
    out.append(intent_envelope("fault-balance", "BTCUSDT", "Buy", "100", bar=40))  # 110007
    out.append(intent_envelope("fault-reduce", "SOLUSDT", "Sell", "1", bar=41,
                               reduce_only=True))                                # 110017
    out.append(intent_envelope("fault-lot", "ETHUSDT", "Buy", "0.015", bar=42))  # qtyStep
    return out


async def test_one_venue_order_per_intent_under_faults(sim, redis_url, namespace):
    sim.post("/sim/faults", FAULTS)
    # caps raised: the 100-BTC intent is for the venue to refuse (110007), not the guard;
    # the age limit too: an intent left pending past its deadline is retried after later
    # bars were seen, and this test is about the venue's faults, not the guard's staleness
    s = executor_settings(sim, redis_url, namespace, venue_timeout_s=0.5, retry_backoff_s=0.05,
                          max_backoff_s=0.5, intent_deadline_s=20.0,
                          max_order_notional_usdt=10**9, max_position_notional_usdt=10**9,
                          max_intent_age_bars=1000)
    svc = ExecutorService(s)
    runtime = svc.runtime()
    await runtime.start()
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    envs = intents()
    t0 = time.monotonic()
    try:
        await publish_intents(bus, envs)

        async def all_ended():
            return len(terminal_by_intent(await report_bodies(bus))) == len(envs)
        await wait_async(all_ended, 75, "every intent reported or rejected")
        elapsed = time.monotonic() - t0
    finally:
        await runtime.stop()
        injected = sim.get("/sim/faults")["injected"]
        sim.post("/sim/faults", {"rate_limit_prob": 0, "http_5xx_prob": 0, "timeout_prob": 0})
    reports = await report_bodies(bus)
    await bus.close()

    # The faults really happened, on the order path too.
    assert injected.get("rate_limit", 0) >= 3 and injected.get("http_5xx", 0) >= 3 \
        and injected.get("timeout", 0) >= 3, injected

    ends = terminal_by_intent(reports)
    assert set(ends) == {e.body.intent_id for e in envs}
    assert all(n == 1 for n in ends.values()), ends          # one terminal event per intent

    by_type = {t: {b["intent_id"]: b for tt, b in reports if tt == t}
               for t in ("order.reported", "order.rejected")}
    rejected = by_type["order.rejected"]
    assert set(rejected) == {"fault-balance", "fault-reduce", "fault-lot"}
    assert rejected["fault-balance"]["ret_code"] == 110007
    assert rejected["fault-reduce"]["ret_code"] == 110017
    assert rejected["fault-lot"]["ret_code"] is None and "qtyStep" in rejected["fault-lot"]["reason"]
    assert {b["source"] for b in rejected.values()} == {"executor"}

    # Exactly one venue order per accepted intent, none for rejected ones.
    orders = venue_orders_by_link(sim)
    for e in envs:
        link = link_of(redis_url, namespace, e.body.intent_id)
        expected = 0 if e.body.intent_id in rejected else 1
        assert orders.get(link, 0) == expected, (e.body.intent_id, orders.get(link))
    assert sum(orders.values()) == 30

    # Every venue fill of our orders published exactly once, with the right intent.
    venue_fills = {x["execId"]: x for x in sim.get("/sim/executions")["list"]
                   if x["execType"] == "Trade"}
    fills = [b for t, b in reports if t == "order.filled"]
    assert Counter(f["exec_id"] for f in fills).most_common(1)[0][1] == 1
    assert {f["exec_id"] for f in fills} == set(venue_fills)
    for f in fills:
        assert venue_fills[f["exec_id"]]["orderLinkId"] == link_of(redis_url, namespace, f["intent_id"])
        assert f["qty"] == venue_fills[f["exec_id"]]["execQty"]
    assert all(b["status"] == "Filled" for b in by_type["order.reported"].values())
    print(f"\n33 intents under faults {injected} ended in {elapsed:.1f} s")
