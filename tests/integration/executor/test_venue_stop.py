"""The stop loss resting on the venue (:mod:`tm_executor.stops`): the executor puts one under
every position where that position alone loses ``TM_EXECUTOR_VENUE_STOP_LOSS`` of the equity;
when the venue's stop closes the position (the mesh down or too slow), the fill is published
once, as any fill, and the reconciler never adopts the closed position as a difference (which
would drop the close's realised PnL). The venue is the exchange sim over HTTP (pybit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import EXEC_REPORT, PORTFOLIO_SNAPSHOT
from tm_common.events import Envelope, OrderFilled
from tm_executor.app import ExecutorService
from tm_executor.domain.stops import stop_price

from .conftest import (
    BAR_MS,
    executor_settings,
    intent_envelope,
    on_bus,
    publish_intents,
    report_bodies,
    snapshot,
    wait_async,
    wait_sync,
)

SYMBOL = "BTCUSDT"
TICK = Decimal("0.1")                  # BTCUSDT's tick on the sim
# 4 BTC short from 2023-01-01 (about 16,540): a 10 % loss of 100k is 2,500 a coin, a stop near
# 19,040; the shipped history's high passes 19,000 on bar 70 (2023-01-12 16:00)
QTY = Decimal(4)
BARS_TO_CROSS = 75


def venue_position(sim) -> dict:
    (row,) = sim.session().get_positions(category="linear", symbol=SYMBOL)["result"]["list"]
    return row


def wanted_stop(sim) -> Decimal:
    """The stop the executor should hold for the venue's position now."""
    row = venue_position(sim)
    (wallet,) = sim.session().get_wallet_balance(accountType="UNIFIED")["result"]["list"]
    qty = Decimal(row["size"]) * (-1 if row["side"] == "Sell" else 1)
    got = stop_price(qty, Decimal(row["avgPrice"]), Decimal(wallet["totalEquity"]), 0.10, TICK)
    assert got is not None
    return got


def stop_fills(redis_url: str, namespace: str) -> list[dict]:
    return [b for t, b in on_bus(report_bodies, redis_url, namespace)
            if t == "order.filled" and b["intent_id"].startswith("stop:")]


def test_a_position_gets_its_venue_stop_and_the_stop_s_fill_is_published_once(
        sim, redis_url, namespace, executor_factory):
    env = {"TM_EXECUTOR_VENUE_STOP_LOSS": "0.10", "TM_EXECUTOR_STOP_CHECK_S": "0.3"}
    executor = executor_factory(sim, redis_url, namespace, **env)
    on_bus(lambda bus: publish_intents(bus, [intent_envelope("stop-1", side="Sell",
                                                             qty=str(QTY))]),
           redis_url, namespace)
    # the fill pokes the keeper: the stop is on the venue without waiting for a schedule
    row = wait_sync(lambda: _with_stop(venue_position(sim)), timeout_s=20,
                    what="the venue stop under the short")
    assert row["side"] == "Sell" and Decimal(row["size"]) == QTY
    assert Decimal(row["stopLoss"]) == wanted_stop(sim)
    assert Decimal(row["stopLoss"]) > Decimal(row["avgPrice"])
    stops = executor.status()["extra"]["venue_stops"]
    assert stops["enabled"] and stops["loss_ratio"] == 0.10 and not stops["unprotected"]

    # the mesh says nothing while the price runs through the stop: the venue closes the short
    sim.advance(BARS_TO_CROSS)
    assert Decimal(venue_position(sim)["size"]) == 0
    (venue_fill,) = [r for r in sim.session().get_executions(
        category="linear", symbol=SYMBOL, execType="Trade")["result"]["list"]
        if r["stopOrderType"] == "StopLoss"]
    (fill,) = wait_sync(lambda: stop_fills(redis_url, namespace) or None, timeout_s=20,
                        what="the stop's fill on exec.report")
    assert fill["exec_id"] == venue_fill["execId"]
    assert fill["intent_id"] == f"stop:{SYMBOL}:{venue_fill['orderId']}"
    assert (fill["side"], Decimal(fill["qty"])) == ("Buy", QTY)
    assert Decimal(fill["price"]) == Decimal(venue_fill["execPrice"])
    assert Decimal(fill["fee"]) == Decimal(venue_fill["execFee"]) > 0
    # stamped with the close before the bar it happened in (the sim fills at the bar's close):
    # booked at once, in the snapshot of the bar whose close shows the venue flat
    stamp_ms = on_bus(lambda bus: _stamp_ms(bus, fill["exec_id"]), redis_url, namespace)
    assert stamp_ms == fill["exec_time_ms"] - BAR_MS
    metrics = executor.get("/metrics").text
    assert f'tm_executor_fills_total{{instrument="{SYMBOL}",source="stop"}} 1.0' in metrics
    assert "executor.stop_loss_filled" in executor.logs()

    # a restart looks again (the venue's last 7 days): the fill is not published twice
    executor.stop()
    again = executor_factory(sim, redis_url, namespace, **env)
    again.wait_for(lambda: again.status()["extra"]["venue_stops"]["runs"] >= 3,
                   what="three checks after the restart")
    assert len(stop_fills(redis_url, namespace)) == 1
    assert again.status()["extra"]["venue_stops"]["stops"] == {}


async def test_the_reconciler_does_not_adopt_a_position_the_venue_s_stop_closed(
        sim, redis_url, namespace):
    """The stop fires between two portfolio snapshots: the venue is flat, the portfolio still
    short. Adopting that as a difference would lose the close's PnL (and then book the fill
    again); the reconciler waits for the fill instead."""
    svc = short_under_a_kept_stop(sim, redis_url, namespace)
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    await bus.publish(PORTFOLIO_SNAPSHOT, snapshot(1, {SYMBOL: str(-QTY)}))
    async with running(svc):
        await wait_async(lambda: _stop_placed(svc), 20, "the start-up check's stop")
        await wait_async(lambda: _reconciled(svc), 20, "the start-up reconciliation")
        assert svc.reconciler.last["result"] == "ok"        # the snapshot agrees: no diff
        sim.advance(BARS_TO_CROSS)                           # the stop fires; no check runs
        assert await svc.reconciler.reconcile_once() == []
        assert svc.reconciler.last == {"result": "skipped",
                                       "reason": "venue stop-loss fills in flight"}
        await wait_async(lambda: _stop_fill_published(bus), 20, "the stop's fill")
        assert await svc.reconciler.reconcile_once() == []   # the portfolio has not caught up
        await bus.publish(PORTFOLIO_SNAPSHOT, snapshot(80, {}))
        assert await svc.reconciler.reconcile_once() == []
        assert svc.reconciler.last["result"] == "ok"
    reports = await report_bodies(bus)
    assert not [b for t, b in reports if t == "position.reconciled"]
    assert len([b for t, b in reports if t == "order.filled"]) == 1
    await bus.close()


async def test_turned_off_in_a_live_mode_the_executor_cancels_the_stops_it_left(
        sim, redis_url, namespace):
    """A run with the stop on leaves one under the short; the next run has it off (0) in a
    mode that follows the wall clock: its keeper cancels that stop, which would otherwise close
    the position by a rule nobody runs any more. In replay with it off, nothing runs."""
    on = short_under_a_kept_stop(sim, redis_url, namespace)
    async with running(on):
        await wait_async(lambda: _stop_placed(on), 20, "the stop of the first run")
    assert Decimal(venue_position(sim)["stopLoss"]) == wanted_stop(sim)

    replay_off = ExecutorService(executor_settings(sim, redis_url, namespace, venue_stop_loss=0))
    assert not replay_off.stops.active and "venue_stops" not in replay_off.parts().background
    # live on the replayed venue's 2023 clock: its clock check would refuse the host's
    off = ExecutorService(executor_settings(sim, redis_url, namespace, venue_stop_loss=0,
                                            mode="live", max_clock_skew_ms=10**13,
                                            stop_check_s=3600))
    assert off.stops.active and not off.stops.enabled
    async with running(off):
        await wait_async(lambda: _stop_cancelled(sim), 20, "the left stop cancelled")
        assert off.stops.unprotected == []
    assert Decimal(venue_position(sim)["size"]) == QTY          # the position itself stays


def short_under_a_kept_stop(sim, redis_url: str, namespace: str) -> ExecutorService:
    """A short on the venue, and an executor that keeps a 10 % stop under it (checked at its
    start, then hourly)."""
    sim.session().place_order(category="linear", symbol=SYMBOL, side="Sell",
                              orderType="Market", qty=str(QTY))
    return ExecutorService(executor_settings(sim, redis_url, namespace, venue_stop_loss=0.10,
                                             stop_check_s=3600))


@asynccontextmanager
async def running(svc: ExecutorService) -> AsyncIterator[ExecutorService]:
    """``svc``'s runtime (consumer and background tasks) for the block."""
    runtime = svc.runtime()
    await runtime.start()
    try:
        yield svc
    finally:
        await runtime.stop()


async def _stop_cancelled(sim) -> bool:
    return Decimal(venue_position(sim)["stopLoss"] or 0) == 0


async def _stamp_ms(bus: RedisStreamsBus, exec_id: str) -> int:
    """The ``ts_event_ns`` (as ms) of the ``exec.report`` fill of ``exec_id``."""
    for _, fields in await bus.entries(EXEC_REPORT, 100_000):
        env = Envelope.from_fields(fields)
        if isinstance(env.body, OrderFilled) and env.body.exec_id == exec_id:
            return env.ts_event_ns // 1_000_000
    raise AssertionError(f"no fill {exec_id} on exec.report")


def _with_stop(row: dict) -> dict | None:
    return row if row["stopLoss"] else None


async def _stop_placed(svc: ExecutorService) -> bool:
    return svc.stops.stops.get(SYMBOL, "none") != "none"


async def _reconciled(svc: ExecutorService) -> bool:
    return svc.reconciler.last["result"] != "not run"


async def _stop_fill_published(bus: RedisStreamsBus) -> bool:
    return any(t == "order.filled" and b["intent_id"].startswith("stop:")
               for t, b in await report_bodies(bus))
