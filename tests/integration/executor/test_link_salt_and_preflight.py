"""The orderLinkId salt (kept in Redis per account and deployment), the preflight retrying a
step instead of the sequence, and the IP-ban silence across a restart: against the simulator
over HTTP (pybit) and real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.sim import QUIET_FAULTS
from tm_executor.app import ExecutorService
from tm_executor.domain.ids import SIM_SALT, is_ours
from tm_executor.preflight import Preflight
from tm_executor.venue import VenueClient

from .conftest import (
    executor_settings,
    intent_envelope,
    link_of,
    link_salt,
    publish_intents,
    report_bodies,
    terminal_by_intent,
    venue_orders_by_link,
    wait_async,
    wait_sync,
)


async def _run_until_ended(svc: ExecutorService, bus: RedisStreamsBus, envs, n: int) -> None:
    runtime = svc.runtime()
    await runtime.start()
    try:
        await publish_intents(bus, envs)

        async def ended() -> bool:
            return len(terminal_by_intent(await report_bodies(bus))) >= n
        await wait_async(ended, 30, f"{n} intents ended")
    finally:
        await runtime.stop()


async def test_a_restart_keeps_the_salt_and_finds_the_order_it_placed(sim, redis_url, namespace):
    s = executor_settings(sim, redis_url, namespace, link_salt_random=True)
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    try:
        first = ExecutorService(s)
        await _run_until_ended(first, bus, [intent_envelope("salt-1")], 1)
        salt = link_salt(redis_url, namespace)
        assert salt is not None and first.links.salt == salt and salt != SIM_SALT
        link = link_of(redis_url, namespace, "salt-1")
        assert len(link) == 36 and is_ours(link, salt) and salt in link
        assert venue_orders_by_link(sim) == {link: 1}

        # a new process of the same deployment: the same salt, so the same intent (as a
        # redelivery after a crash would bring it) finds its order instead of placing another
        second = ExecutorService(s)
        await second.preflight_passed()
        assert second.links.salt == salt
        out = await second.placer.execute(intent_envelope("salt-1").body)
        assert out.accepted and not out.placed and out.link_id == link
        assert venue_orders_by_link(sim) == {link: 1}
    finally:
        await bus.close()


async def test_two_deployments_on_one_account_do_not_collide(sim, redis_url, namespace):
    """The same window replayed twice on one account (same intent ids), by two deployments
    (namespaces) that draw their salt as on a real venue: two salts, two distinct orders, no
    110072 duplicate. (On the simulator the salt is fixed by default, so that runs compare.)"""
    ns_b = namespace + "b:"
    bus_a = RedisStreamsBus(redis_url, prefix=namespace)
    bus_b = RedisStreamsBus(redis_url, prefix=ns_b)
    try:
        for ns, bus in ((namespace, bus_a), (ns_b, bus_b)):
            svc = ExecutorService(executor_settings(sim, redis_url, ns, link_salt_random=True))
            await _run_until_ended(svc, bus, [intent_envelope("replayed-1")], 1)
        reports = {ns: await report_bodies(b) for ns, b in ((namespace, bus_a), (ns_b, bus_b))}
        salts = {ns: link_salt(redis_url, ns) for ns in (namespace, ns_b)}
        assert None not in salts.values() and salts[namespace] != salts[ns_b]
        links = {link_of(redis_url, ns, "replayed-1") for ns in (namespace, ns_b)}
        assert len(links) == 2
        assert venue_orders_by_link(sim) == dict.fromkeys(links, 1)
        for got in reports.values():           # each reported its own order, filled
            assert [b["status"] for t, b in got if t == "order.reported"] == ["Filled"]
            assert not [b for t, b in got if t == "order.rejected"]
    finally:
        await bus_a.close()
        await bus_b.close()           # ns_b is under namespace: the fixture deletes it


async def test_a_failing_step_is_retried_alone(sim, redis_url, namespace):
    """5xx on set-leverage for 1.5 s: the steps before it ran once, set-leverage was retried
    with backoff, and the preflight passed soon after the fault ended."""
    s = executor_settings(sim, redis_url, namespace, preflight_backoff_s=0.05,
                          preflight_retry_s=0.4)
    sim.post("/sim/faults", {"http_5xx_prob": 1.0, "paths": ["/v5/position/set-leverage"]})
    pf = Preflight(VenueClient(s), s)
    stop = asyncio.Event()
    task = asyncio.create_task(pf.run(stop))
    try:
        await asyncio.sleep(1.5)
        assert not pf.passed and pf.reason.startswith("leverage:BTCUSDT:")
        sim.post("/sim/faults", {"http_5xx_prob": 0, "paths": None})
        t0 = time.monotonic()
        await asyncio.wait_for(task, 5)
        after_s = time.monotonic() - t0
    finally:
        stop.set()
        sim.post("/sim/faults", {**QUIET_FAULTS})
    assert pf.passed and after_s < 1.0, after_s
    a = pf.step_attempts
    assert a["clock"] == a["account"] == a["position_mode"] == 1, a
    assert a["leverage:BTCUSDT"] >= 4, a           # 0.05, 0.1, 0.2, 0.4 ... within 1.5 s
    assert a["leverage:ETHUSDT"] == a["instrument:SOLUSDT"] == 1, a
    assert pf.attempts == 1                        # the sequence ran once


async def test_preflight_passes_quickly_with_venue_faults_on_from_the_start(sim, redis_url,
                                                                            namespace):
    """The venue-faults drill's faults (10006, 5xx, answers held 2 s past a 1 s client timeout,
    10 % each) on every venue path from the first request, as in the 179 s measurement of a
    preflight that restarted its sequence: with the default backoff (0.2 s doubling to 5 s),
    well under 30 s."""
    s = executor_settings(sim, redis_url, namespace, venue_timeout_s=1.0,
                          preflight_retry_s=5.0, preflight_backoff_s=0.2)
    sim.post("/sim/faults", {"rate_limit_prob": 0.1, "http_5xx_prob": 0.1, "timeout_prob": 0.1,
                             "timeout_s": 2.0, "seed": 20261203})
    pf = Preflight(VenueClient(s), s)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(pf.run(asyncio.Event()), 60)
        took = time.monotonic() - t0
        injected = sim.get("/sim/faults")["injected"]
    finally:
        sim.post("/sim/faults", {**QUIET_FAULTS})
    failures = sum(pf.step_attempts.values()) - len(pf.step_attempts)
    print(f"\npreflight under faults passed in {took:.1f} s, {failures} step retries, "
          f"injected {injected}")
    assert pf.passed and took < 30, took
    assert failures >= 2, pf.step_attempts          # the faults did hit it
    assert pf.attempts == 1


def test_the_ip_ban_silence_survives_a_restart(sim, redis_url, namespace, executor_factory):
    """A 403 in the first process: the second one (the venue lifted its ban meanwhile) stays
    silent for the rest of the 10 minutes, sends nothing and says so in /readyz."""
    sim.post("/sim/faults", {"ip_ban_s": 3600, "ip_ban_now": True})
    try:
        ex = executor_factory(sim, redis_url, namespace, wait_ready=False)
        wait_sync(lambda: "banned our IP" in ex.get("/readyz").text, 20, "the first 403")
        ex.kill9()
        sim.post("/sim/faults", {"ip_ban_s": 0, "ip_ban_now": True})       # lifted at the venue
        ex2 = executor_factory(sim, redis_url, namespace, wait_ready=False)
        wait_sync(lambda: "silent for" in ex2.get("/readyz").text, 20, "the silence resumed")
        time.sleep(1.0)
        ready = ex2.get("/readyz")
        assert ready.status_code == 503 and "HTTP 403" in ready.text
        left = float(ready.text.split("silent for ")[1].split(" s")[0])
        assert 500 < left <= 600, ready.text
        status = ex2.get("/status").json()["extra"]
        assert status["venue_calls"] == 0                     # nothing reached the venue
        assert status["preflight"]["steps"]["ip_ban"].startswith("silent for")
    finally:
        sim.post("/sim/faults", {"ip_ban_s": 0, "ip_ban_now": True})


async def test_on_the_simulator_the_salt_is_fixed_so_runs_compare(sim, redis_url, namespace):
    """Two runs (namespaces) on the simulator, as the backtest and a mesh replay: the same
    intent names the same order in both."""
    salts = []
    for ns in (namespace, namespace + "2:"):
        svc = ExecutorService(executor_settings(sim, redis_url, ns))
        salts.append(await svc.links.ensure())
    assert salts == [SIM_SALT, SIM_SALT] and link_salt(redis_url, namespace) == SIM_SALT


@pytest.mark.parametrize("bad", ["ABCDEFGH", "short"])
def test_a_bad_pinned_salt_is_refused_in_one_line(bad, sim, redis_url, namespace):
    with pytest.raises(ValueError, match="salt must be 8 characters of"):
        executor_settings(sim, redis_url, namespace, link_salt=bad)
