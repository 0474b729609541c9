"""The handler: outputs per intent, rejections, and observed fills published once."""

from decimal import Decimal

import pytest
from tm_common.bus.streams import EXEC_REPORT
from tm_common.errors import TransientError
from tm_common.events import Envelope, OrderApproved, OrderFilled, OrderRejected, OrderReported
from tm_executor.handler import ExecutorHandler
from tm_executor.placement import OrderPlacer

from .fakes import Clock, FakeVenue, FatalPreflight, PassedPreflight, links, settings
from .fakes import link as order_link_id


def intent_event(i="intent-1", qty="0.010", order_type="Market", price=None) -> Envelope:
    body = OrderApproved(intent_id=i, instrument="BTCUSDT", bar_time_ms=7, side="Buy",
                         qty=Decimal(qty), target_qty=Decimal(qty), order_type=order_type,
                         price=Decimal(price) if price else None)
    return Envelope.root(body, key=i, correlation_id="BTCUSDT:7", ts_event_ns=7, ts_init_ns=1)


def make(venue=None, preflight=None):
    venue = venue or FakeVenue()
    clock = Clock()
    s = settings()
    h = ExecutorHandler(s, OrderPlacer(venue, s, links(s), sleep=clock.sleep, clock=clock),
                        preflight or PassedPreflight())
    h.state.guard.closes["BTCUSDT"] = Decimal(100)      # the guard values market orders with it
    return h, venue


def observed(h, body) -> Envelope:
    key = body.exec_id if isinstance(body, OrderFilled) else body.status
    return Envelope.root(body, key=f"obs:{body.TYPE}:{key}", correlation_id="x:0",
                         ts_event_ns=0, ts_init_ns=1)


async def test_market_intent_reports_then_fills_in_one_output_list():
    h, _v = make()
    out = await h.handle(intent_event())
    assert [type(e.body) for e in out] == [OrderReported, OrderFilled]
    assert {e.stream for e in out} == {EXEC_REPORT}
    rep, fill = out[0].body, out[1].body
    assert rep.status == "Filled" and rep.order_link_id == order_link_id("intent-1")
    assert fill.intent_id == "intent-1" and fill.exec_id == "e-o1" and fill.qty == Decimal("0.010")
    assert h.state.open == {}


async def test_lot_filter_rejects_without_calling_the_venue():
    h, v = make()
    (out,) = await h.handle(intent_event(qty="0.0105"))
    assert isinstance(out.body, OrderRejected) and out.body.source == "executor"
    assert "qtyStep" in out.body.reason and out.body.ret_code is None and v.lookups == 0


async def test_venue_rejection_carries_the_ret_code():
    h, _ = make(FakeVenue(place_faults=["reject:110007"]))
    (out,) = await h.handle(intent_event())
    assert out.body.ret_code == 110007 and out.body.intent_id == "intent-1"
    assert out.body.bar_time_ms == 7 and out.body.source == "executor"


async def test_fatal_preflight_rejects_with_its_code_and_pending_preflight_retries():
    h, v = make(preflight=FatalPreflight())
    (out,) = await h.handle(intent_event())
    assert out.body.ret_code == 10003 and "not ready" in out.body.reason and v.lookups == 0

    class Pending(FatalPreflight):
        state = "pending"
    h2, _ = make(preflight=Pending())
    with pytest.raises(TransientError, match="preflight"):
        await h2.handle(intent_event())


async def test_resting_order_fills_later_once_each_then_closes():
    v = FakeVenue(limit_rests=True)
    h, _ = make(v)
    out = await h.handle(intent_event(order_type="Limit", price="100.0"))
    assert [type(e.body) for e in out] == [OrderReported] and out[0].body.status == "New"
    link = order_link_id("intent-1")
    assert link in h.state.open
    saved = h.snapshot()

    def fill(exec_id, qty):
        return OrderFilled(intent_id="", order_link_id=link, order_id="o1", exec_id=exec_id,
                           instrument="BTCUSDT", side="Buy", qty=Decimal(qty),
                           price=Decimal("100.0"), fee=Decimal("0.001"), is_maker=True,
                           exec_time_ms=9)
    first = await h.handle(observed(h, fill("x1", "0.004")))
    assert len(first) == 1 and first[0].body.intent_id == "intent-1"
    assert first[0].correlation_id == "BTCUSDT:7" and first[0].ts_event_ns == 7
    assert await h.handle(observed(h, fill("x1", "0.004"))) == []          # WS + poll: once
    last = await h.handle(observed(h, fill("x2", "0.006")))
    assert [type(e.body) for e in last] == [OrderFilled, OrderReported]
    assert last[1].body.status == "Filled" and h.state.open == {}
    assert await h.handle(observed(h, fill("x3", "0.001"))) == []          # closed: ignored

    h.restore(saved)                     # a failed commit rolls back to the snapshot
    assert link in h.state.open and h.state.open[link].seen == []
    h.restore(None)
    assert h.state.open == {}


async def test_observed_terminal_state_closes_and_unknown_orders_are_ignored():
    h, _ = make(FakeVenue(limit_rests=True))
    await h.handle(intent_event(order_type="Limit", price="100.0"))
    link = order_link_id("intent-1")
    cancel = OrderReported(intent_id="", order_link_id=link, order_id="o1", instrument="BTCUSDT",
                           status="Cancelled")
    other = OrderReported(intent_id="", order_link_id="tm-other", order_id="o9",
                          instrument="BTCUSDT", status="Cancelled")
    assert await h.handle(observed(h, other)) == []
    (out,) = await h.handle(observed(h, cancel))
    assert out.body.status == "Cancelled" and out.body.intent_id == "intent-1"
    assert h.state.open == {} and h.counts["Cancelled"] == 1


async def test_a_clock_skew_past_the_limit_rejects_without_sending():
    class Skewed(PassedPreflight):
        skew = "host clock ahead of the venue by 9000 ms, over TM_EXECUTOR_MAX_CLOCK_SKEW_MS=5000"
    h, v = make(preflight=Skewed())
    (out,) = await h.handle(intent_event())
    assert isinstance(out.body, OrderRejected)
    assert "clock skew" in out.body.reason and "9000 ms" in out.body.reason
    assert v.lookups == 0 and v.place_calls == 0
