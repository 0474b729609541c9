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
    holds = {Trigger.KILL, Trigger.DAILY_LOSS, Trigger.CUMULATIVE_LOSS}
    trips = {Trigger.DRAWDOWN, Trigger.STALE_DATA, Trigger.EXEC_FAILURES, Trigger.MANUAL_TRIP,
             *holds}
    assert {t for (s, t), to in TRANSITIONS.items() if s == C} == trips
    assert all(TRANSITIONS[(C, t)] == O and TRANSITIONS[(H, t)] == O for t in trips)
    assert all(TRANSITIONS[(O, t)] == O for t in holds)      # OPEN → OPEN: a stronger hold
    assert TRANSITIONS[(H, Trigger.LOSS)] == O and TRANSITIONS[(H, Trigger.HELD)] == C
    assert TRANSITIONS[(O, Trigger.COOLDOWN_ELAPSED)] == H
    assert TRANSITIONS[(O, Trigger.MANUAL_RESET)] == C and TRANSITIONS[(H, Trigger.MANUAL_RESET)] == C
    assert len(TRANSITIONS) == 22


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
        if before == State.OPEN and b.state != State.OPEN:
            assert trig in (Trigger.COOLDOWN_ELAPSED, Trigger.MANUAL_RESET)
        if before == State.OPEN and b.state == State.OPEN:
            assert trig in brk.HOLDS and b.hold == brk.HOLDS[trig]


# -- events: random snapshots, clocks and executor outcomes only ever fire legal transitions -----
evt = st.one_of(
    st.tuples(st.just("snap"), st.integers(80, 120)),
    st.tuples(st.just("clock"), st.integers(0, 4 * H4_MS)),
    st.tuples(st.just("exec"), st.booleans()),
    st.tuples(st.just("manual"), st.sampled_from([Trigger.MANUAL_TRIP, Trigger.MANUAL_RESET,
                                                  Trigger.KILL])),
    st.tuples(st.just("breach"), st.sampled_from([Trigger.DAILY_LOSS, Trigger.CUMULATIVE_LOSS])),
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
        elif kind == "breach":
            bar += H4_MS
            now = max(now, bar)
            last_end["BTCUSDT"] = now
            b, ts = brk.on_snapshot(b, Decimal(100), bar, now, P, (v, "limit"))
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


# -- holds: a kill, a manual trip and the cumulative loss limit never recover by themselves ----
def _open_for_a_long_time(b):
    """The clock runs 30 days past the trip with fresh data: cool-down applies if it may."""
    now = b.since_ms + 30 * brk.DAY_MS
    return brk.on_clock(b, now, {"BTCUSDT": now}, H4_MS, P)


@pytest.mark.parametrize("trigger", [Trigger.KILL, Trigger.MANUAL_TRIP, Trigger.CUMULATIVE_LOSS])
def test_a_held_trip_stays_open_until_a_manual_reset(trigger):
    b, t = fire(Breaker(), trigger, "x", 1_000)
    assert b.state == State.OPEN and b.hold == brk.HOLDS[trigger]
    b2, ts = _open_for_a_long_time(b)
    assert ts == [] and b2.state == State.OPEN and b2.hold == b.hold
    b3, t = fire(b2, Trigger.MANUAL_RESET, "checked", b2.since_ms + 1)
    assert b3.state == State.CLOSED and b3.hold == ""


def test_an_automatic_trip_keeps_its_cool_down():
    b, _ = fire(Breaker(), Trigger.DRAWDOWN, "x", 1_000)
    assert b.hold == ""
    b, ts = _open_for_a_long_time(b)
    assert [t.trigger for t in ts] == [Trigger.COOLDOWN_ELAPSED] and b.state == State.HALF_OPEN


def test_a_daily_loss_trip_cools_down_only_after_its_utc_day():
    day = 20_000 * brk.DAY_MS
    b, _ = fire(Breaker(), Trigger.DAILY_LOSS, "x", day + 1_000)
    p = BreakerParams(cooldown_ms=H4_MS)
    late_same_day = day + brk.DAY_MS - 1
    b2, ts = brk.on_clock(b, late_same_day, {"BTCUSDT": late_same_day}, H4_MS, p)
    assert ts == [] and b2.state == State.OPEN            # cool-down elapsed, day not over
    b3, ts = brk.on_clock(b, day + brk.DAY_MS, {"BTCUSDT": day + brk.DAY_MS}, H4_MS, p)
    assert [t.trigger for t in ts] == [Trigger.COOLDOWN_ELAPSED]


def test_a_kill_during_a_drawdown_trip_takes_the_recovery_away():
    b, _ = fire(Breaker(), Trigger.DRAWDOWN, "x", 1_000)
    assert brk.outranks(b, Trigger.KILL)
    b, t = fire(b, Trigger.KILL, "operator", 2_000)
    assert (t.from_state, t.to_state, b.hold) == (State.OPEN, State.OPEN, "kill")
    b, ts = _open_for_a_long_time(b)
    assert ts == [] and b.state == State.OPEN
    assert not brk.outranks(b, Trigger.DAILY_LOSS) and not brk.outranks(b, Trigger.CUMULATIVE_LOSS)


def test_a_breach_fires_in_open_only_when_it_outranks_the_hold():
    b, _ = fire(Breaker(), Trigger.DRAWDOWN, "x", 1_000)
    b, ts = brk.on_snapshot(b, Decimal(90), H4_MS, 2_000, P, (Trigger.DAILY_LOSS, "daily"))
    assert [t.trigger for t in ts] == [Trigger.DAILY_LOSS] and b.hold == "daily_loss"
    b, ts = brk.on_snapshot(b, Decimal(89), 2 * H4_MS, 3_000, P, (Trigger.DAILY_LOSS, "daily"))
    assert ts == []                                       # the same hold: no second trip
    b, ts = brk.on_snapshot(b, Decimal(80), 3 * H4_MS, 4_000, P,
                            (Trigger.CUMULATIVE_LOSS, "cum"))
    assert [t.trigger for t in ts] == [Trigger.CUMULATIVE_LOSS] and b.hold == "cumulative_loss"
