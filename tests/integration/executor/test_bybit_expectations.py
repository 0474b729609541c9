"""The executor as Bybit expects it (issue 15, part 3), against the sim over HTTP through pybit."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from tm_common.bus.redis import RedisStreamsBus
from tm_common.errors import NotReady
from tm_executor.app import ExecutorService
from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueRejected, VenueTransient
from tm_executor.metrics import ExecutorMetrics
from tm_executor.preflight import Preflight
from tm_executor.venue import VenueClient

from .conftest import (
    executor_settings,
    intent_envelope,
    publish_intents,
    report_bodies,
    terminal_by_intent,
    venue_orders_by_link,
    wait_async,
)


def _text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


async def test_not_modified_answers_are_not_exchange_errors(sim, redis_url, namespace):
    # The second preflight finds one-way mode and the leverage already set: the venue answers
    # 110025 and 110043, which mean "done", not a failure.
    registry = CollectorRegistry()
    settings = executor_settings(sim, redis_url, namespace)
    venue = VenueClient(settings, ExecutorMetrics(registry))
    await Preflight(venue, settings).run_once()
    preflight = Preflight(venue, settings)
    await preflight.run_once()
    assert preflight.steps["position_mode"] == "already one-way"
    assert preflight.steps["leverage:BTCUSDT"].startswith("unchanged")
    assert venue.errors == 0
    text = _text(registry)
    assert "110025" not in text and "110043" not in text
    assert "tm_executor_exchange_errors_total{" not in text


async def test_a_foreign_position_is_a_warning_not_a_reconciliation(sim, redis_url, namespace):
    # The executor trades BTCUSDT only; an ETHUSDT position was opened by hand.
    session = sim.session()
    session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                        qty="0.010")
    session.place_order(category="linear", symbol="ETHUSDT", side="Sell", orderType="Market",
                        qty="0.50")
    svc = ExecutorService(executor_settings(sim, redis_url, namespace, symbols=("BTCUSDT",)))
    runtime = svc.runtime()
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    await runtime.start()
    try:
        await wait_async(lambda: _reconciled(svc), 20, "a reconciliation run")
    finally:
        await runtime.stop()
    rows = [b for t, b in await report_bodies(bus) if t == "position.reconciled"]
    assert [r["instrument"] for r in rows] == ["BTCUSDT"]
    assert svc.reconciler.last["foreign_positions"] == ["ETHUSDT"]
    text = svc.service_metrics.exposition().decode()
    assert 'tm_executor_foreign_positions{instrument="ETHUSDT"} 1.0' in text
    assert 'tm_executor_foreign_positions{instrument="BTCUSDT"}' not in text
    assert 'tm_executor_reconciliation_differences_total{instrument="ETHUSDT"}' not in text
    await bus.close()


async def _reconciled(svc: ExecutorService) -> bool:
    return svc.reconciler.last.get("result") in ("ok", "differences")


async def test_an_order_below_the_minimum_value_is_refused_not_sent(sim, redis_url, namespace):
    # SOLUSDT valued at 10 USDT (the bar published before the intent): 0.1 SOL = 1 USDT, under
    # the venue's minNotionalValue (5 USDT); 1.0 SOL = 10 USDT passes.
    _, reports = await _run_intents(sim, redis_url, namespace, [
        intent_envelope("tiny", "SOLUSDT", "Buy", "0.1"),
        intent_envelope("enough", "SOLUSDT", "Buy", "1.0")])
    rejected = [b for t, b in reports if t == "order.rejected"]
    assert [r["intent_id"] for r in rejected] == ["tiny"]
    assert "minNotionalValue 5" in rejected[0]["reason"] and "not sent" in rejected[0]["reason"]
    links = venue_orders_by_link(sim)
    assert len(links) == 1                       # only "enough" reached the venue


async def _terminal(bus: RedisStreamsBus, n: int) -> bool:
    return sum(terminal_by_intent(await report_bodies(bus)).values()) >= n


async def _run_intents(sim, redis_url: str, namespace: str, intents: list,
                       **settings) -> tuple[ExecutorService, list]:
    """A real executor service on ``intents`` until each has ended; (service, report bodies)."""
    svc = ExecutorService(executor_settings(sim, redis_url, namespace, **settings))
    runtime = svc.runtime()
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    await runtime.start()
    try:
        await publish_intents(bus, intents)
        await wait_async(lambda: _terminal(bus, len(intents)), 20, "every intent ended")
    finally:
        await runtime.stop()
    try:
        return svc, await report_bodies(bus)
    finally:
        await bus.close()


async def test_a_403_ip_ban_silences_the_client_and_says_so(sim, redis_url, namespace):
    registry = CollectorRegistry()
    settings = executor_settings(sim, redis_url, namespace, ip_ban_silence_s=1.5)
    venue = VenueClient(settings, ExecutorMetrics(registry))
    sim.post("/sim/faults", {"ip_ban_s": 3600, "ip_ban_now": True})
    try:
        with pytest.raises(VenueTransient) as first:
            await venue.wallet()
        assert first.value.http_status == 403
        # the venue lifts the ban at once: the client stays silent all the same
        sim.post("/sim/faults", {"ip_ban_s": 0, "ip_ban_now": True})
        calls = venue.calls
        with pytest.raises(VenueTransient, match="silent after HTTP 403"):
            await venue.wallet()
        assert venue.calls == calls                       # nothing was sent
        with pytest.raises(NotReady, match="banned our IP"):
            venue.check_ip_ban()
        left = float(_metric(_text(registry), "tm_executor_ip_ban_silence_seconds"))
        assert 0 < left <= 1.5
        await asyncio.sleep(1.6)
        assert venue.check_ip_ban() is True
        assert float(_metric(_text(registry), "tm_executor_ip_ban_silence_seconds")) == 0
        assert (await venue.wallet())["accountType"] == "UNIFIED"
    finally:
        sim.post("/sim/faults", {"ip_ban_s": 0, "ip_ban_now": True})


def test_ip_ban_silence_defaults_to_ten_minutes():
    assert ExecutorSettings().ip_ban_silence_s == 600


def _metric(text: str, name: str) -> str:
    return next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " "))


AHEAD_MS = 60_000


def _ahead() -> int:
    """A host clock 60 s ahead of the venue's (the sim tells the real time)."""
    return int(time.time() * 1000) + AHEAD_MS


async def test_signed_calls_follow_the_venue_clock_after_a_sync(sim, redis_url, namespace):
    settings = executor_settings(sim, redis_url, namespace, max_clock_skew_ms=120_000)
    registry = CollectorRegistry()
    venue = VenueClient(settings, ExecutorMetrics(registry), host_ms=_ahead)
    with pytest.raises(VenueTransient) as before:
        await venue.wallet()                 # signed with the host's time: outside recv_window
    assert before.value.ret_code == 10002
    offset = await venue.sync_clock()
    assert abs(offset + AHEAD_MS) < 2_000
    assert (await venue.wallet())["accountType"] == "UNIFIED"
    assert venue.check_clock() is True
    assert abs(float(_metric(_text(registry), "tm_executor_clock_offset_seconds")) * 1000
               + AHEAD_MS) < 2_000


async def test_a_skew_past_the_limit_keeps_the_executor_not_ready(sim, redis_url, namespace):
    settings = executor_settings(sim, redis_url, namespace, max_clock_skew_ms=5_000)
    venue = VenueClient(settings, host_ms=_ahead)
    preflight = Preflight(venue, settings)
    with pytest.raises(VenueRejected, match="ahead of the venue by .* ms, over "
                                            "TM_EXECUTOR_MAX_CLOCK_SKEW_MS=5000"):
        await preflight.run_once()
    with pytest.raises(NotReady, match="clock skew"):
        venue.check_clock()
    # the host clock right: ready
    venue.host_ms = lambda: int(time.time() * 1000)
    await preflight.run_once()
    assert venue.check_clock() is True and abs(venue.clock_offset_ms or 0) < 2_000


async def test_the_clock_is_measured_again_periodically(sim, redis_url, namespace):
    settings = executor_settings(sim, redis_url, namespace, clock_sync_interval_s=0.2,
                                 max_clock_skew_ms=5_000)
    shift = {"ms": 0}
    venue = VenueClient(settings, host_ms=lambda: int(time.time() * 1000) + shift["ms"])
    preflight = Preflight(venue, settings)
    stop = asyncio.Event()
    await preflight.run(stop)
    assert preflight.passed and venue.clock_problem() is None
    shift["ms"] = AHEAD_MS                    # the host clock jumps 60 s ahead after the start
    task = asyncio.create_task(preflight.sync_clock(stop))
    try:
        await wait_async(lambda: _skewed(venue), 5, "the periodic sync sees the jump")
    finally:
        stop.set()
        await task
    assert "ahead of the venue" in (venue.clock_problem() or "")
    with pytest.raises(NotReady, match="clock skew"):
        venue.check_clock()


async def _skewed(venue: VenueClient) -> bool:
    return venue.clock_problem() is not None


async def test_large_fills_are_counted_for_the_alert(sim, redis_url, namespace):
    """Fills at least TM_EXECUTOR_LARGE_FILL_NOTIONAL_USDT are counted (alert TMLargeFill);
    every fill's traded value is summed. SOLUSDT at ~10 USDT: 1.0 SOL is large at 8, 0.6 not."""
    svc, reports = await _run_intents(sim, redis_url, namespace, [
        intent_envelope("big", "SOLUSDT", "Buy", "1.0"),
        intent_envelope("small", "SOLUSDT", "Buy", "0.6")], large_fill_notional_usdt=8)
    fills = [b for t, b in reports if t == "order.filled"]
    value = sum(float(b["qty"]) * float(b["price"]) for b in fills)
    m = svc.metrics
    assert m.large_fills.labels("SOLUSDT")._value.get() == 1
    assert m.fill_notional.labels("SOLUSDT")._value.get() == pytest.approx(value)
    assert len(fills) == 2
