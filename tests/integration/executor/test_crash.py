"""kill -9 between sending an order and handling its answer: after a restart the intent is
redelivered, the executor finds the order by its orderLinkId and reports it; the venue still
holds exactly one order for it. Two ways to die there: a test hook that ``os._exit``\\ s right
after ``place_order`` returned (deterministic), and SIGKILL while the request is in flight
(the sim holds ``/v5/order/create`` for 1.5 s)."""

from __future__ import annotations

import time

from tm_common.bus.streams import RISK_ORDER

from .conftest import (
    intent_envelope,
    link_of,
    on_bus,
    publish_intents,
    report_bodies,
    terminal_by_intent,
    venue_orders_by_link,
    wait_sync,
)


def publish(redis_url, namespace, envs):
    on_bus(lambda bus: publish_intents(bus, envs), redis_url, namespace)


def reports(redis_url, namespace):
    return on_bus(report_bodies, redis_url, namespace)


def pending(redis_url, namespace) -> int:
    async def go(bus):
        info = [g for g in await bus.group_info(RISK_ORDER) if g["name"] == "executor"]
        return info[0]["pending"] if info else 0
    return on_bus(go, redis_url, namespace)


def check_exactly_once(sim, redis_url, namespace, intent_ids):
    got = reports(redis_url, namespace)
    ends = terminal_by_intent(got)
    assert {i: ends.get(i) for i in intent_ids} == {i: 1 for i in intent_ids}
    reported = {b["intent_id"]: b for t, b in got if t == "order.reported"}
    orders = venue_orders_by_link(sim)
    for i in intent_ids:
        assert orders[link_of(redis_url, namespace, i)] == 1, i
        assert reported[i]["status"] == "Filled"
    fills = [b["exec_id"] for t, b in got if t == "order.filled"]
    assert len(fills) == len(set(fills)) == len(intent_ids)


def test_crash_after_place_returned_then_restart(sim, redis_url, namespace, executor_factory):
    ids = ["crash-1", "crash-2", "crash-3"]
    ex = executor_factory(sim, redis_url, namespace, TM_EXECUTOR_TEST_CRASH_AFTER_PLACE="2")
    publish(redis_url, namespace, [intent_envelope(i, bar=n) for n, i in enumerate(ids)])
    assert ex.proc.wait(timeout=30) == 99                      # died right after placing #2
    orders = venue_orders_by_link(sim)
    assert orders[link_of(redis_url, namespace, "crash-2")] == 1               # the order reached the venue
    assert set(terminal_by_intent(reports(redis_url, namespace))) == {"crash-1"}
    assert pending(redis_url, namespace) >= 1                  # crash-2 delivered, not acked

    ex2 = executor_factory(sim, redis_url, namespace)
    wait_sync(lambda: len(terminal_by_intent(reports(redis_url, namespace))) == 3, 30,
              "all three intents ended")
    check_exactly_once(sim, redis_url, namespace, ids)
    assert ex2.get("/status").json()["extra"]["handler"]["orders"] == {"Filled": 2}


def test_kill9_with_the_order_request_in_flight(sim, redis_url, namespace, executor_factory):
    """Two kills, one restart after each. ``before_processing``: the sim delays
    /v5/order/create by 1.5 s and the kill lands while the request waits. ``answer_held``: the
    sim processes the request and holds its answer for 3 s (the client waits up to 5 s); the
    kill lands once the order exists at the venue."""
    done: list[str] = []
    ex = executor_factory(sim, redis_url, namespace, TM_EXECUTOR_VENUE_TIMEOUT_S="5")
    for phase in ("before_processing", "answer_held"):
        intent_id = f"inflight-{phase}"
        link = link_of(redis_url, namespace, intent_id)
        if phase == "before_processing":
            sim.post("/sim/faults", {"latency_ms": 1500, "paths": ["/v5/order/create"]})
        else:
            sim.post("/sim/faults", {"timeout_prob": 1.0, "timeout_s": 3.0,
                                     "paths": ["/v5/order/create"]})
        publish(redis_url, namespace, [intent_envelope(intent_id, bar=len(done))])
        wait_sync(lambda: pending(redis_url, namespace) == 1, 10, "intent delivered")
        if phase == "before_processing":
            time.sleep(0.6)                                     # lookup done, create in flight
        else:
            wait_sync(lambda link=link: venue_orders_by_link(sim).get(link), 10,
                      "order at the venue")
        ex.kill9()
        assert set(terminal_by_intent(reports(redis_url, namespace))) == set(done)
        time.sleep(1.0)             # whatever the venue does with the abandoned request
        landed = venue_orders_by_link(sim).get(link, 0)
        if phase == "answer_held":
            assert landed == 1
        sim.post("/sim/faults", {"latency_ms": 0, "timeout_prob": 0, "paths": None})

        ex = executor_factory(sim, redis_url, namespace, TM_EXECUTOR_VENUE_TIMEOUT_S="5")
        done.append(intent_id)
        wait_sync(lambda: len(terminal_by_intent(reports(redis_url, namespace))) == len(done),
                  30, "intent ended")
        check_exactly_once(sim, redis_url, namespace, done)
        print(f"\n{phase}: the killed request {'was' if landed else 'was not'} processed")
