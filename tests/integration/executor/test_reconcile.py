"""Reconciliation against the sim: the exchange is the truth."""

from __future__ import annotations

import json
from decimal import Decimal

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import EXEC_REPORT, PORTFOLIO_SNAPSHOT
from tm_executor.app import ExecutorService

from .conftest import (
    executor_settings,
    intent_envelope,
    publish_intents,
    report_bodies,
    snapshot,
    terminal_by_intent,
    wait_async,
)


async def reconciled(bus) -> list[dict]:
    return [b for t, b in await report_bodies(bus) if t == "position.reconciled"]


async def test_start_up_reconciliation_adopts_a_position_the_portfolio_lacks(
        sim, redis_url, namespace):
    # A position placed behind the executor's back (manually, another tool): no orderLinkId.
    session = sim.session()
    session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                        qty="0.010")
    session.place_order(category="linear", symbol="ETHUSDT", side="Sell", orderType="Market",
                        qty="0.50")
    svc = ExecutorService(executor_settings(sim, redis_url, namespace))
    runtime = svc.runtime()
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    await runtime.start()
    try:
        rows = await wait_async(lambda: reconciled(bus), 20, "PositionReconciled published")
        await wait_async(lambda: _n(reconciled(bus), 2), 5, "both positions")
    finally:
        await runtime.stop()
    rows = sorted(await reconciled(bus), key=lambda b: b["instrument"])
    assert [(r["instrument"], r["exchange_qty"], r["portfolio_qty"]) for r in rows] == [
        ("BTCUSDT", "0.010", "0"), ("ETHUSDT", "-0.50", "0")]
    assert all("unknown to the portfolio" in r["reason"] for r in rows)
    assert Decimal(rows[0]["avg_price"]) > 0
    assert svc.reconciler.last["result"] == "differences"
    text = svc.service_metrics.exposition().decode()
    assert 'tm_executor_reconciliation_differences_total{instrument="BTCUSDT"} 1.0' in text
    await bus.close()


async def _n(coro, n):
    return len(await coro) >= n


async def test_reconciliation_follows_the_portfolio_view(sim, redis_url, namespace):
    svc = ExecutorService(executor_settings(sim, redis_url, namespace))
    runtime = svc.runtime()
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    await runtime.start()
    try:
        await wait_async(lambda: _ready(svc), 20, "preflight")
        await publish_intents(bus, [intent_envelope("rec-1", "SOLUSDT", "Buy", "2.0")])

        async def ended():
            return terminal_by_intent(await report_bodies(bus))
        await wait_async(ended, 20, "intent reported")
        # A fill newer than any snapshot: the portfolio has not caught up, no comparison.
        assert await svc.reconciler.reconcile_once() == []
        assert "older than the last fill" in svc.reconciler.last["reason"]

        # The portfolio caught up (its snapshot holds the fill): nothing to reconcile.
        await bus.publish(PORTFOLIO_SNAPSHOT, snapshot(1, {"SOLUSDT": "2.0"}))
        assert await svc.reconciler.reconcile_once() == []
        assert svc.reconciler.last["result"] == "ok"

        # The portfolio believes in a position the exchange does not have: exchange wins, once.
        await bus.publish(PORTFOLIO_SNAPSHOT, snapshot(2, {"SOLUSDT": "2.0", "BTCUSDT": "-1"}))
        diffs = await svc.reconciler.reconcile_once()
        assert [(d.symbol, d.exchange_qty, d.portfolio_qty) for d in diffs] == [
            ("BTCUSDT", Decimal(0), Decimal(-1))]
        assert await svc.reconciler.reconcile_once() == []      # published, not yet adopted
        rows = await reconciled(bus)
        assert len(rows) == 1 and "absent on the exchange" in rows[0]["reason"]
    finally:
        await runtime.stop()
    entries = await bus.entries(EXEC_REPORT)
    rec = [f for _, f in entries if f["type"] == "position.reconciled"]
    assert rec[0]["correlation_id"].startswith("BTCUSDT:") and json.loads(rec[0]["body"])
    await bus.close()


async def _ready(svc) -> bool:
    return svc.preflight.passed


async def test_a_fill_the_executor_has_not_handled_yet_is_not_a_difference(
        sim, redis_url, namespace):
    """The venue filled a resting order; the fill has not reached the executor (no WebSocket,
    the poller not run yet): reconciling now must not report the position as unexplained."""
    mark = Decimal(sim.get("/sim/clock")["marks"]["BTCUSDT"])
    price = (mark * Decimal("1.003")).quantize(Decimal("0.1"))
    svc = ExecutorService(executor_settings(sim, redis_url, namespace, ws_enabled=False,
                                            fill_poll_interval_s=3600))
    runtime = svc.runtime()
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    await runtime.start()
    try:
        await wait_async(lambda: _ready(svc), 20, "preflight and start-up reconciliation")
        await publish_intents(bus, [intent_envelope("rest-1", "BTCUSDT", "Sell", "0.005",
                                                    order_type="Limit", price=price)])
        await wait_async(lambda: _open(svc), 20, "the limit order resting")
        for _ in range(30):
            sim.advance(1)
            if any(o["orderStatus"] == "Filled" for o in sim.get("/sim/orders")["list"]):
                break
        assert await svc.reconciler.reconcile_once() == []
        assert "fills in flight for" in svc.reconciler.last.get("reason", ""), svc.reconciler.last
        await svc.poller.poll_once()                       # now the fill is handled
        await wait_async(lambda: _filled(bus), 10, "order.filled published")
    finally:
        await runtime.stop()
    assert await reconciled(bus) == []


async def _ready(svc):
    return svc.preflight.passed and svc.reconciler.runs >= 1


async def _open(svc):
    return len(svc.handler.state.open) == 1


async def _filled(bus):
    return any(t == "order.filled" for t, _ in await report_bodies(bus))
