"""The forged-order attack, refused at two independent layers, on real Redis with the executor
trading on the exchange simulator over HTTP through pybit.

The attack (issue 19): a client with XADD rights on ``risk.order`` adds an ``OrderApproved``
that risk never made, possibly while the breaker is OPEN.

- **Signature layer** (``tm_common.bus.signing``): the executor holds the ``risk.order`` key;
  an unsigned entry and one signed with another key are dead-lettered with their reason and
  counted, and nothing reaches the venue, although the breaker is CLOSED and the intents are
  within every cap (so nothing else would have stopped them).
- **Executor guard** (``tm_executor.domain.guard``): with intents correctly signed (a stolen
  key, or a bug upstream), an intent that adds exposure while the breaker is OPEN, one over
  the per-order cap and one whose bar is stale are each refused with an ``OrderRejected`` on
  ``exec.report`` and counted; nothing reaches the venue. A reduce-only intent passes the guard
  while OPEN (the venue refuses it here: there is no position to reduce).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.signing import KeyRing
from tm_common.bus.streams import RISK_BREAKER, RISK_ORDER
from tm_common.events import BreakerStateChanged, Envelope
from tm_executor.app import ExecutorService

from .conftest import (
    START_MS,
    executor_settings,
    intent_envelope,
    link_of,
    publish_intents,
    report_bodies,
    terminal_by_intent,
    venue_orders_by_link,
    wait_async,
)

KEYS = {RISK_ORDER: "o" * 64, RISK_BREAKER: "b" * 64}
SETTINGS_KEYS = {"signing_key_risk_order": KEYS[RISK_ORDER],
                 "signing_key_risk_breaker": KEYS[RISK_BREAKER], "signing_key_exec_venue": "v" * 64}


def breaker_envelope(to: str, frm: str, n: int) -> Envelope:
    body = BreakerStateChanged(from_state=frm, to_state=to, trigger="manual",
                               reason="operator trip", at_ms=START_MS)
    return Envelope.root(body, key=f"breaker:{n}", correlation_id="breaker",
                         ts_event_ns=START_MS * 1_000_000, ts_init_ns=time.time_ns())


async def run_executor(sim, redis_url, namespace, publish, until_ended: set[str]):
    """Start the executor (with its keys), run ``publish(risk_bus, forger_bus)``, wait until
    every intent of ``until_ended`` has a terminal report; returns (service, exec.report)."""
    svc = ExecutorService(executor_settings(sim, redis_url, namespace, **SETTINGS_KEYS))
    runtime = svc.runtime()
    await runtime.start()
    risk = RedisStreamsBus(redis_url, prefix=namespace, keys=KeyRing(KEYS))    # risk's signer
    forger = RedisStreamsBus(redis_url, prefix=namespace)                        # XADD only
    try:
        await publish(risk, forger)

        async def ended():
            return until_ended <= set(terminal_by_intent(await report_bodies(risk)))
        await wait_async(ended, 30, f"terminal reports for {sorted(until_ended)}")
        return svc, await report_bodies(risk), svc.service_metrics.exposition().decode(), risk
    finally:
        await runtime.stop()
        await forger.close()


async def test_forged_intents_are_dead_lettered_and_never_reach_the_venue(sim, redis_url,
                                                                           namespace):
    forged = intent_envelope("forged-unsigned", qty="0.005")
    wrong_key = intent_envelope("forged-wrong-key", qty="0.005")
    genuine = intent_envelope("genuine", qty="0.002")

    async def publish(risk, forger):
        await publish_intents(forger, [forged])                       # the bar, then the entry
        wrong = RedisStreamsBus(redis_url, prefix=namespace, keys=KeyRing({RISK_ORDER: "w" * 64}))
        await wrong.publish(RISK_ORDER, wrong_key)                    # someone else's key
        await wrong.close()
        await publish_intents(risk, [genuine])                        # the control

    svc, reports, metrics, risk = await run_executor(sim, redis_url, namespace, publish,
                                                     {"genuine"})
    try:
        dead = [f for _, f in await risk.entries(RISK_ORDER + ".dlq")]
    finally:
        await risk.close()
    assert [f["dlq_reason"].split(":")[0] for f in dead] == ["unsigned", "bad signature"]
    assert [f["event_id"] for f in dead] == [forged.event_id, wrong_key.event_id]
    assert all(f["dlq_group"] == "executor" for f in dead)
    orders = venue_orders_by_link(sim)
    assert orders == {link_of(redis_url, namespace, "genuine"): 1}, orders              # nothing forged placed
    assert set(terminal_by_intent(reports)) == {"genuine"}              # no report of a forgery
    assert svc.handler.refusals == {}                                    # the guard saw nothing
    assert ('tm_consumer_signature_refused_total{group="executor",reason="unsigned",'
            'stream="risk.order"} 1.0') in metrics
    assert ('tm_consumer_signature_refused_total{group="executor",reason="bad signature",'
            'stream="risk.order"} 1.0') in metrics


async def test_signed_intents_the_guard_refuses_with_an_event(sim, redis_url, namespace):
    open_buy = intent_envelope("open-buy", qty="0.002", bar=1)
    open_reduce = intent_envelope("open-reduce", side="Sell", qty="0.002", bar=1,
                                  reduce_only=True)
    over_cap = intent_envelope("over-cap", qty="40", bar=2)              # 660,000 USDT
    stale = intent_envelope("stale", qty="0.002", bar=0)                 # bar 0 after bar 2
    fine = intent_envelope("fine", qty="0.002", bar=2)

    async def publish(risk, _forger):
        # Entries of two streams added in the same millisecond tie, and the executor then
        # takes the breaker change first (its view before intents, by design: see
        # test_the_view_is_updated_before_an_intent_added_in_the_same_millisecond). This test
        # is about the sequence, so 2 ms apart make the ids the publication order.
        await risk.publish(RISK_BREAKER, breaker_envelope("OPEN", "CLOSED", 1))
        await asyncio.sleep(0.002)
        await publish_intents(risk, [open_buy, open_reduce])
        await asyncio.sleep(0.002)
        await risk.publish(RISK_BREAKER, breaker_envelope("CLOSED", "OPEN", 2))
        await asyncio.sleep(0.002)
        await publish_intents(risk, [over_cap, fine])
        await risk.publish(RISK_ORDER, stale)                           # bar 0 is behind now

    ids = {"open-buy", "open-reduce", "over-cap", "stale", "fine"}
    svc, reports, metrics, risk = await run_executor(sim, redis_url, namespace, publish, ids)
    await risk.close()
    rejected = {b["intent_id"]: b for t, b in reports if t == "order.rejected"}
    assert set(rejected) == {"open-buy", "open-reduce", "over-cap", "stale"}
    assert rejected["open-buy"]["reason"].startswith("guard breaker_open: breaker OPEN")
    assert rejected["over-cap"]["reason"].startswith("guard order_notional:")
    assert rejected["stale"]["reason"].startswith("guard stale:")
    # reduce-only passed the guard while OPEN: the venue refused it (no position to reduce)
    assert rejected["open-reduce"]["ret_code"] == 110017
    assert all(b["source"] == "executor" for b in rejected.values())
    orders = venue_orders_by_link(sim)
    assert orders == {link_of(redis_url, namespace, "fine"): 1}, orders
    assert svc.handler.refusals == {"breaker_open": 1, "order_notional": 1, "stale": 1}
    for rule in ("breaker_open", "order_notional", "stale"):
        assert (f'tm_executor_guard_refusals_total{{instrument="BTCUSDT",rule="{rule}"}} 1.0'
                in metrics)
    assert "tm_executor_breaker_state 0.0" in metrics
    assert svc.handler.state.guard.positions == {"BTCUSDT": Decimal("0.002")}


async def test_the_view_is_updated_before_an_intent_added_in_the_same_millisecond(
        sim, redis_url, namespace):
    """Two streams' entries added in one millisecond share an id (risk commits a breaker change
    and its orders together): the executor handles the bar and the breaker first."""
    from tm_common.bus.streams import MD_BAR

    from .conftest import bar_envelope

    intent = intent_envelope("same-ms", qty="0.002")
    opened = intent_envelope("same-ms-open", qty="0.002", bar=1)

    async def publish(risk, _forger):
        r = risk.r
        await r.xadd(risk.key(MD_BAR), bar_envelope("BTCUSDT", START_MS).to_fields(), id="5-1")
        await r.xadd(risk.key(RISK_ORDER), risk.keys.fields(RISK_ORDER, intent), id="5-1")
        await r.xadd(risk.key(MD_BAR), bar_envelope("BTCUSDT", START_MS + 4 * 3600_000).to_fields(),
                     id="6-1")
        await r.xadd(risk.key(RISK_BREAKER),
                     risk.keys.fields(RISK_BREAKER, breaker_envelope("OPEN", "CLOSED", 1)), id="6-1")
        await r.xadd(risk.key(RISK_ORDER), risk.keys.fields(RISK_ORDER, opened), id="6-1")

    svc, reports, _, risk = await run_executor(sim, redis_url, namespace, publish,
                                               {"same-ms", "same-ms-open"})
    await risk.close()
    rejected = {b["intent_id"]: b["reason"] for t, b in reports if t == "order.rejected"}
    assert rejected == {"same-ms-open": rejected.get("same-ms-open", "")}, rejected
    assert rejected["same-ms-open"].startswith("guard breaker_open")
    assert venue_orders_by_link(sim) == {link_of(redis_url, namespace, "same-ms"): 1}
