"""The breaker transition table and its trigger rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_risk.domain import breaker as brk
from tm_risk.domain.breaker import (
    TRANSITIONS,
    Breaker,
    IllegalTransition,
    State,
    Trigger,
    can_fire,
    fire,
    next_state,
)
from tm_risk.domain.params import H4_MS, BreakerParams

P = BreakerParams()
states = st.sampled_from(list(State))
triggers = st.sampled_from(list(Trigger))


@settings(deadline=None)
@given(states, triggers)
def test_every_pair_maps_per_table_or_raises(state, trigger):
    if (state, trigger) in TRANSITIONS:
        assert next_state(state, trigger) == TRANSITIONS[(state, trigger)]
        assert can_fire(state, trigger)
    else:
        assert not can_fire(state, trigger)
        with pytest.raises(IllegalTransition):
            next_state(state, trigger)
        with pytest.raises(IllegalTransition):
            fire(Breaker(state=state), trigger, "x", 0)


def test_the_table_is_the_documented_machine():
    C, O, H = State.CLOSED, State.OPEN, State.HALF_OPEN
    trips = {Trigger.DRAWDOWN, Trigger.STALE_DATA, Trigger.EXEC_FAILURES, Trigger.MANUAL_TRIP}
    assert {t for (s, t), to in TRANSITIONS.items() if s == C} == trips
    assert all(TRANSITIONS[(C, t)] == O and TRANSITIONS[(H, t)] == O for t in trips)
    assert TRANSITIONS[(H, Trigger.LOSS)] == O and TRANSITIONS[(H, Trigger.HELD)] == C
    assert TRANSITIONS[(O, Trigger.COOLDOWN_ELAPSED)] == H
    assert TRANSITIONS[(O, Trigger.MANUAL_RESET)] == C and TRANSITIONS[(H, Trigger.MANUAL_RESET)] == C
    assert len(TRANSITIONS) == 13


@settings(deadline=None)
@given(st.lists(triggers, max_size=60))
def test_open_is_left_only_by_cooldown_or_manual_reset(seq):
    b = Breaker()
    for i, trig in enumerate(seq):
        if not can_fire(b.state, trig):
            with pytest.raises(IllegalTransition):
                fire(b, trig, "", i)
            continue
        before = b.state
        b, t = fire(b, trig, "", i)
        assert (t.from_state, t.to_state, t.at_ms) == (before, b.state, i)
        if before == State.OPEN:
            assert trig in (Trigger.COOLDOWN_ELAPSED, Trigger.MANUAL_RESET)
            assert b.state != State.OPEN


# -- events: random snapshots, clocks and executor outcomes only ever fire legal transitions -----
evt = st.one_of(
    st.tuples(st.just("snap"), st.integers(80, 120)),
    st.tuples(st.just("clock"), st.integers(0, 4 * H4_MS)),
    st.tuples(st.just("exec"), st.booleans()),
    st.tuples(st.just("manual"), st.sampled_from([Trigger.MANUAL_TRIP, Trigger.MANUAL_RESET])),
)


@settings(deadline=None)
@given(st.lists(evt, max_size=80))
def test_evaluation_fires_only_table_transitions_in_a_chain(events):
    b, now, bar, last_end = Breaker(), 0, 0, {"BTCUSDT": 0}
    for kind, v in events:
        before = b.state
        if kind == "snap":
            bar += H4_MS
            now = max(now, bar)
            last_end["BTCUSDT"] = now
            b, ts = brk.on_snapshot(b, Decimal(v), bar, now, P)
        elif kind == "clock":
            now += v
            b, ts = brk.on_clock(b, now, last_end, H4_MS, P)
        elif kind == "exec":
            b, ts = brk.on_exec_result(b, v, now, "r", P)
        else:
            if not can_fire(b.state, v):
                continue
            b, t = fire(b, v, "op", now)
            ts = [t]
        state = before
        for t in ts:
            assert t.from_state == state and (t.from_state, t.trigger) in TRANSITIONS
            assert TRANSITIONS[(t.from_state, t.trigger)] == t.to_state
            state = t.to_state
        assert state == b.state


def _snap(b, equity, bar_i, p=P):
    return brk.on_snapshot(b, Decimal(str(equity)), bar_i * H4_MS, bar_i * H4_MS, p)


def test_drawdown_beyond_five_percent_trips_exactly_five_does_not():
    b, ts = _snap(Breaker(), 100, 1)
    b, ts = _snap(b, 95, 2)
    assert ts == [] and b.state == State.CLOSED
    b, ts = _snap(b, "94.99", 3)
    assert [t.trigger for t in ts] == [Trigger.DRAWDOWN] and b.state == State.OPEN
    assert "5.01%" in ts[0].reason


def test_peak_is_rebased_on_leaving_open_so_a_flat_book_does_not_retrip():
    b, _ = _snap(Breaker(), 100, 1)
    b, _ = _snap(b, 90, 2)
    assert b.state == State.OPEN
    b, _ = _snap(b, 89, 3)                     # still OPEN: peak not updated while open
    b, ts = brk.on_clock(b, b.since_ms + P.cooldown_ms, {}, H4_MS, P)
    assert [t.to_state for t in ts] == [State.HALF_OPEN] and b.peak_equity == Decimal(89)
    b, ts = _snap(b, 89, 20)
    assert ts == [] and b.state == State.HALF_OPEN


def test_half_open_loss_reopens_and_held_bars_close():
    b = Breaker(state=State.HALF_OPEN, peak_equity=Decimal(100), last_equity=Decimal(100),
                last_snapshot_bar_ms=0)
    b2, ts = _snap(b, "99.8", 1)               # −0.2 % > 0.1 % tolerance
    assert [t.trigger for t in ts] == [Trigger.LOSS] and b2.state == State.OPEN
    for i in range(1, P.hold_bars):
        b, ts = _snap(b, "99.95", i)           # −0.05 % then flat: within tolerance
        assert ts == [] and b.held_bars == i
    b, ts = _snap(b, "99.95", P.hold_bars - 1)  # the same bar again does not count
    assert ts == [] and b.held_bars == P.hold_bars - 1
    b, ts = _snap(b, 100, P.hold_bars)
    assert [t.trigger for t in ts] == [Trigger.HELD] and b.state == State.CLOSED


def test_stale_after_more_than_two_intervals_and_cooldown_waits_for_fresh_data():
    last = {"BTCUSDT": 10 * H4_MS, "ETHUSDT": 12 * H4_MS}
    b, ts = brk.on_clock(Breaker(), 12 * H4_MS, last, H4_MS, P)
    assert ts == []
    b, ts = brk.on_clock(b, 12 * H4_MS + 1, last, H4_MS, P)
    assert [t.trigger for t in ts] == [Trigger.STALE_DATA] and "BTCUSDT" in ts[0].reason
    assert "ETHUSDT" not in ts[0].reason
    later = b.since_ms + P.cooldown_ms
    b2, ts = brk.on_clock(b, later, last, H4_MS, P)
    assert ts == [] and b2.state == State.OPEN          # BTC still stale: stays open
    fresh = {"BTCUSDT": later, "ETHUSDT": later}
    b3, ts = brk.on_clock(b, later - 1, fresh, H4_MS, P)
    assert ts == [] and b3.state == State.OPEN          # cool-down not yet elapsed
    b3, ts = brk.on_clock(b, later, fresh, H4_MS, P)
    assert [t.trigger for t in ts] == [Trigger.COOLDOWN_ELAPSED] and b3.state == State.HALF_OPEN


def test_consecutive_executor_failures():
    b = Breaker()
    for ok in (False, False, True, False, False):   # a success in between resets the count
        b, ts = brk.on_exec_result(b, not ok, 0, "r", P)
        assert ts == []
    b, ts = brk.on_exec_result(b, True, 5, "venue says no", P)
    assert [t.trigger for t in ts] == [Trigger.EXEC_FAILURES] and "venue says no" in ts[0].reason
    assert b.state == State.OPEN and b.failures == 0
    for _ in range(5):                                # counting in OPEN never raises
        b, ts = brk.on_exec_result(b, True, 6, "r", P)
        assert ts == []
