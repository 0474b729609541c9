"""The executor's guard (tm_executor.domain.guard) and the handler's use of it: every rule
refuses what it should, a reduce-only intent always passes, the view is committed state."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tm_common.errors import TransientError
from tm_common.events import BarClosed, BreakerStateChanged, Envelope, OrderApproved, OrderRejected
from tm_executor.domain.guard import GuardLimits, GuardView, check
from tm_executor.handler import ExecutorHandler
from tm_executor.placement import OrderPlacer

from .fakes import Clock, FakeVenue, PassedPreflight, links, settings

H4 = 4 * 3600 * 1000
T0 = 1_700_006_400_000 // (2 * H4) * (2 * H4)     # bars 0 and 2 close off the funding hours
LIMITS = GuardLimits(max_order_notional_usdt=Decimal(10_000),
                     max_position_notional_usdt=Decimal(25_000),
                     max_order_qty={"BTCUSDT": Decimal("0.3")},
                     max_position_qty={"BTCUSDT": Decimal("0.4")}, max_intent_age_bars=1,
                     interval_ms=H4)


def intent(qty="0.1", side="Buy", bar=0, reduce_only=False, order_type="Market", price=None,
           instrument="BTCUSDT", intent_id="i") -> OrderApproved:
    return OrderApproved(intent_id=intent_id, instrument=instrument, bar_time_ms=T0 + bar * H4, side=side,
                         qty=Decimal(qty), target_qty=Decimal(qty), reduce_only=reduce_only,
                         order_type=order_type, price=Decimal(price) if price else None)


def view(**kw) -> GuardView:
    base = {"newest_bar_ms": T0, "closes": {"BTCUSDT": Decimal(50_000)}}
    return GuardView(**{**base, **kw})


def rule(i, v=None, now_ms=None):
    r = check(i, v or view(), LIMITS, now_ms)
    return None if r is None else r.rule


def test_each_rule_refuses_what_it_names():
    assert rule(intent()) is None                                        # 5,000 USDT, fresh
    assert rule(intent(), view(breaker="OPEN", breaker_reason="kill: x")) == "breaker_open"
    assert rule(intent(), view(breaker="HALF_OPEN")) is None             # risk scales it
    assert rule(intent(bar=-1)) is None                                  # one bar behind: ok
    assert rule(intent(bar=-2)) == "stale"                               # two: stale
    assert rule(intent(), view(closes={})) == "no_price"
    assert rule(intent(order_type="Limit", price="50000"), view(closes={})) is None
    assert rule(intent(qty="0.35")) == "order_qty"
    assert rule(intent(qty="0.25")) == "order_notional"                  # 12,500 > 10,000
    pos = {"BTCUSDT": Decimal("0.2")}
    assert rule(intent(qty="0.19"), view(positions=pos)) is None         # 0.39 x 50k = 19.5k
    assert rule(intent(qty="0.15", order_type="Limit", price="30000"),
                view(positions={"BTCUSDT": Decimal("0.3")})) == "position_qty"
    assert rule(intent(qty="0.1", order_type="Limit", price="70000"),
                view(positions={"BTCUSDT": Decimal("0.3")})) == "position_notional"


def test_the_clock_ages_intents_only_when_given():
    late = T0 + 2 * H4 + 60_000                   # bar 1 closed: one bar behind
    assert rule(intent(), now_ms=T0 + H4 + 1) is None
    assert rule(intent(), now_ms=late) is None
    assert rule(intent(), now_ms=late + H4) == "stale"           # bar 2 closed: two behind
    assert rule(intent()) is None                 # replay: bar time only


def test_a_position_over_its_cap_may_still_shrink():
    over = view(positions={"BTCUSDT": Decimal("-0.9")})
    assert rule(intent(qty="0.1", side="Buy"), over) is None             # -0.9 → -0.8
    assert rule(intent(qty="0.1", side="Sell"), over) == "position_qty"  # -0.9 → -1.0


@given(st.sampled_from(["CLOSED", "HALF_OPEN", "OPEN"]), st.integers(-50, 5),
       st.decimals("0.001", "1000", places=3), st.sampled_from(["Buy", "Sell"]),
       st.booleans(), st.decimals("-500", "500", places=3))
def test_reduce_only_always_passes_and_open_never_lets_exposure_through(
        breaker, bar, qty, side, has_price, pos):
    v = view(breaker=breaker, positions={"BTCUSDT": pos},
             closes={"BTCUSDT": Decimal(50_000)} if has_price else {})
    assert check(intent(str(qty), side, bar, reduce_only=True), v, LIMITS, T0) is None
    refused = check(intent(str(qty), side, bar), v, LIMITS, T0)
    if breaker == "OPEN":
        assert refused is not None and refused.rule == "breaker_open"


def make(mode="replay", clock=None, **kw_settings):
    s = settings(mode=mode, max_order_notional_usdt=10_000, max_position_notional_usdt=25_000,
                 **kw_settings)
    venue = FakeVenue()
    c = Clock()
    kw = {} if clock is None else {"clock": clock}
    return ExecutorHandler(s, OrderPlacer(venue, s, links(s), sleep=c.sleep, clock=c),
                           PassedPreflight(), **kw), venue


def ev(body, key="k") -> Envelope:
    return Envelope.root(body, key=key, correlation_id="x", ts_event_ns=1, ts_init_ns=1)


def bar_ev(i=0, close="50000") -> Envelope:
    c = Decimal(close)
    return ev(BarClosed(instrument="BTCUSDT", open_time_ms=T0 + i * H4,
                        close_time_ms=T0 + (i + 1) * H4 - 1, open=c, high=c, low=c, close=c,
                        volume=Decimal(1)), key=f"bar{i}")


def breaker_ev(to, frm="CLOSED") -> Envelope:
    return ev(BreakerStateChanged(from_state=frm, to_state=to, trigger="manual",
                                  reason="operator", at_ms=1), key=f"b{to}")


async def test_the_handler_refuses_with_an_event_and_sends_nothing():
    h, venue = make()
    await h.handle(bar_ev(0))
    await h.handle(breaker_ev("OPEN"))
    (out,) = await h.handle(ev(intent("0.01"), "i1"))
    assert isinstance(out.body, OrderRejected) and out.body.source == "executor"
    assert out.body.reason.startswith("guard breaker_open: breaker OPEN (manual: operator)")
    assert out.body.ret_code is None and out.body.intent_id == "i"
    assert venue.place_calls == 0 and h.refusals == {"breaker_open": 1}
    saved = h.snapshot()
    h.restore(None)
    assert h.state.guard.breaker == "CLOSED"
    h.restore(saved)                                       # the view is committed state
    assert h.state.guard.breaker == "OPEN" and h.state.guard.newest_bar_ms == T0
    await h.handle(breaker_ev("CLOSED", "OPEN"))
    out = await h.handle(ev(intent("0.01", intent_id="i2"), "i2"))
    assert [type(e.body).__name__ for e in out] == ["OrderReported", "OrderFilled"]
    assert venue.place_calls == 1 and h.state.guard.positions == {"BTCUSDT": Decimal("0.01")}


async def test_positions_count_the_published_fills_and_the_cap_bites():
    h, venue = make()
    await h.handle(bar_ev(0))
    for i in range(2):                                     # 2 x 0.19 BTC at 50k: 19,000 USDT
        await h.handle(ev(intent("0.19", intent_id=f"i{i}"), f"i{i}"))
    assert h.state.guard.positions["BTCUSDT"] == Decimal("0.38") and venue.place_calls == 2
    again = await h.handle(ev(intent("0.19", intent_id="i1"), "copy"))     # a replayed entry
    assert len(again) == 2 and venue.place_calls == 2      # reported again, not placed again
    assert h.state.guard.positions["BTCUSDT"] == Decimal("0.38")         # nor counted again
    (out,) = await h.handle(ev(intent("0.19", intent_id="i3"), "i3"))    # 28,500 > 25,000
    assert "guard position_notional" in out.body.reason and venue.place_calls == 2


async def test_live_mode_ages_intents_by_the_clock_replay_by_bars_only():
    now = [T0 + 3 * H4 + 1]                                # bar 2 closed: bar 0 is stale
    live, venue = make("live", clock=lambda: now[0] * 1_000_000)
    await live.handle(bar_ev(0))
    (out,) = await live.handle(ev(intent("0.01"), "late"))
    assert "guard stale" in out.body.reason and venue.place_calls == 0
    replay, venue = make("replay", clock=lambda: now[0] * 1_000_000)
    await replay.handle(bar_ev(0))
    assert len(await replay.handle(ev(intent("0.01"), "late"))) == 2 and venue.place_calls == 1
    await replay.handle(bar_ev(2))                         # the stream moved two bars on
    (out,) = await replay.handle(ev(intent("0.01", intent_id="j"), "older"))
    assert "guard stale" in out.body.reason


async def test_an_intent_whose_order_reached_the_venue_is_reported_not_refused_later():
    # The first handling sent the order but every lookup missed it until the deadline passed
    # (left pending); meanwhile the stream moved on two bars, so the guard would call the
    # redelivered intent stale. The venue holds its order: it is reported, not refused.
    h, venue = make(place_attempts=1, intent_deadline_s=0.5)
    venue.place_faults, venue.lookup_misses = ["timeout_after"], 3
    await h.handle(bar_ev(0))
    with pytest.raises(TransientError):
        await h.handle(ev(intent("0.01"), "i"))
    assert venue.place_calls == 1 and len(venue.orders) == 1
    await h.handle(bar_ev(2))
    out = await h.handle(ev(intent("0.01"), "i"))
    assert [type(e.body).__name__ for e in out] == ["OrderReported", "OrderFilled"]
    assert venue.place_calls == 1 and h.refusals == {}
    # an intent never sent is still refused as stale (and the lookup is all it cost)
    (out,) = await h.handle(ev(intent("0.01", intent_id="k"), "k"))
    assert "guard stale" in out.body.reason and venue.place_calls == 1
