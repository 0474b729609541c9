"""Ledger: exact PnL on opens, partial closes and flips; the equity identity under any sequence;
agreement with the exchange sim's account and matching engine to the last decimal."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_app.testing.random_venue import RandomVenue, execution_event
from tm_exchange_sim.matching.account import Account
from tm_portfolio.domain.ledger import Ledger

D = Decimal


def test_partial_close_then_flip_books_exact_pnl():
    led = Ledger(initial=D(1000))
    led.mark("X", D(100), 0)
    led.apply_fill("X", "Buy", D(2), D(100), D("0.1"))
    b = led.apply_fill("X", "Sell", D(1), D(110), D("0.05"))           # partial close
    assert (b.closed, b.realised_pnl, b.trip_closed) == (D(1), D(10), None)
    pos = led.positions["X"]
    assert (pos.size, pos.entry_value, pos.avg_price) == (D(1), D(100), D(100))
    b = led.apply_fill("X", "Sell", D(3), D(90), D("0.2"))             # flip: close 1, open 2 short
    assert (b.closed, b.realised_pnl) == (D(1), D(-10))
    assert b.trip_closed == D(10) - D(10) - D("0.35")                 # realised − fees of the trip
    assert (pos.size, pos.entry_value, pos.avg_price) == (D(-2), D(180), D(90))
    led.mark("X", D(80), 1)
    assert led.unrealised_pnl() == D(20)                              # short gains as price falls
    assert led.realised_pnl == D(0)
    assert led.fees == D("0.35")
    assert led.cash() == D(1000) - D("0.35")
    assert led.equity() == D(1000) - D("0.35") + D(20)
    assert (led.trips_won, led.trips_lost) == (0, 1)
    led.apply_fill("X", "Buy", D(2), D(70), D(0))                      # close the short: a win
    assert led.realised_pnl == D(40) and pos.size == 0 and pos.entry_value == 0
    assert (led.trips_won, led.trips_lost) == (1, 1)


def test_partial_closes_take_quantised_share_and_last_close_the_remainder():
    led = Ledger(initial=D(0))
    led.apply_fill("X", "Buy", D(1), D(3), D(0))
    led.apply_fill("X", "Buy", D(2), D("3.5"), D(0))                   # size 3, entry value 10
    b1 = led.apply_fill("X", "Sell", D(1), D(4), D(0))
    assert b1.realised_pnl == D(4) - D("3.3333333333")                # 10/3 on the 1e-10 grid
    assert led.positions["X"].entry_value == D("6.6666666667")
    b2 = led.apply_fill("X", "Sell", D(2), D(4), D(0))
    assert b2.realised_pnl == D(8) - D("6.6666666667")
    assert led.realised_pnl == D(2)                                   # exactly 12 − 10


def test_funding_is_paid_by_positive_payment_and_charged_to_the_trip():
    led = Ledger(initial=D(100))
    led.apply_fill("X", "Buy", D(1), D(10), D(0))
    led.apply_funding("X", D("0.5"))
    led.apply_funding("X", D("-0.2"))                                 # received
    assert led.funding == D("0.3") and led.cash() == D("99.7")
    led.apply_fill("X", "Sell", D(1), D("10.2"), D(0))                # +0.2 price, −0.3 funding
    assert (led.trips_won, led.trips_lost) == (0, 1)


def test_adopt_exchange_position_records_adjustment():
    led = Ledger(initial=D(1000))
    led.mark("X", D(110), 5)
    led.apply_fill("X", "Buy", D(1), D(100), D(0))
    rec = led.adopt("X", D(-2), D(105), reason="differs", at_ms=7)
    pos = led.positions["X"]
    assert (pos.size, pos.entry_value) == (D(-2), D(210))
    assert rec["qty_before"] == D(1) and rec["qty_after"] == D(-2)
    assert rec["unrealised_change"] == (D(-220) + D(210)) - D(10)
    assert led.realised_pnl == 0 and led.adjustment_count == 1
    assert led.equity() == D(1000) + D(-10)
    led.adopt("X", D(0), D(0), reason="flat", at_ms=8)
    assert pos.entry_value == 0 and led.unrealised_pnl() == 0
    assert Ledger.from_dict(led.to_dict()) == led


def test_bad_fills_are_refused():
    led = Ledger(initial=D(1))
    with pytest.raises(ValueError):
        led.apply_fill("X", "Buy", D(0), D(1), D(0))
    with pytest.raises(ValueError):
        led.apply_fill("X", "Hold", D(1), D(1), D(0))
    with pytest.raises(ValueError):
        led.mark("X", D(0), 1)


prices = st.integers(1, 10_000).map(lambda n: D(n) / 100)
qtys = st.integers(1, 500).map(lambda n: D(n) / 10)
fees = st.integers(-50, 500).map(lambda n: D(n) / 1000)
actions = st.lists(st.one_of(
    st.tuples(st.just("fill"), st.sampled_from("AB"), st.sampled_from(["Buy", "Sell"]), qtys,
              prices, fees),
    st.tuples(st.just("funding"), st.sampled_from("AB"), st.integers(-1000, 1000).map(
        lambda n: D(n) / 100)),
    st.tuples(st.just("mark"), st.sampled_from("AB"), prices),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(actions)
def test_equity_identity_and_agreement_with_the_venue_account(seq):
    """equity = initial + realised + unrealised − fees − funding, exactly, checked against an
    independent cash-flow count and the exchange sim's own Account after every action."""
    initial = D(100_000)
    led, acc = Ledger(initial=initial), Account(initial, D(10))
    marks = {"A": D(50), "B": D(7)}
    for s, m in marks.items():
        led.mark(s, m, 0)
    flows = D(0)          # −Σ signed qty × price − fees − funding
    size = {"A": D(0), "B": D(0)}
    for t, a in enumerate(seq, start=1):
        if a[0] == "fill":
            _, s, side, q, p, fee = a
            led.apply_fill(s, side, q, p, fee)
            acc.apply_fill(s, side, q, p, fee, t)
            sign = 1 if side == "Buy" else -1
            flows += -sign * q * p - fee
            size[s] += sign * q
        elif a[0] == "funding":
            _, s, pay = a
            led.apply_funding(s, pay)
            flows -= pay
            acc.wallet_balance -= pay          # the account books funding it computes itself
            acc.cum_funding += pay
        else:
            _, s, p = a
            led.mark(s, p, t)
            marks[s] = p
        value = sum((size[s] * marks[s] for s in size), D(0))
        assert led.equity() == initial + flows + value
        assert led.equity() == initial + led.realised_pnl + led.unrealised_pnl() - led.fees \
            - led.funding
        assert led.cash() == acc.wallet_balance
        assert led.equity() == acc.equity(marks)
        for s, p in acc.positions.items():
            assert (led.positions[s].size, led.positions[s].entry_value) == (p.size, p.entry_value)
    assert Ledger.from_dict(led.to_dict()) == led


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_matches_the_matching_engine_wallet_at_every_step(seed):
    """Drive the exchange sim's engine with random orders (market, limit, resting, reduce-only)
    and funding; feed its executions and marks to the ledger: equity and cash agree exactly."""
    venue = RandomVenue(seed=seed)
    led = Ledger(initial=venue.wallet()["wallet_balance"])
    trades = 0

    def feed(execs):
        nonlocal trades
        for e in execs:
            ev = execution_event(e)
            if e.exec_type == "Funding":
                led.apply_funding(ev.instrument, ev.payment)
            else:
                led.apply_fill(ev.instrument, ev.side, ev.qty, ev.price, ev.fee)
                trades += 1

    def check():
        for s, m in venue.engine.marks.items():
            led.mark(s, m, 0)
        w = venue.wallet()
        assert led.cash() == w["wallet_balance"]
        assert led.unrealised_pnl() == w["unrealised_pnl"]
        assert led.equity() == w["equity"]
        for s, p in venue.engine.account.positions.items():
            assert led.positions.get(s) is None and p.size == 0 or \
                (led.positions[s].size, led.positions[s].entry_value) == (p.size, p.entry_value)

    for i in range(30):
        _, execs = venue.step(i)
        feed(execs)
        check()
        feed(venue.trade(4))
        check()
    assert trades > 0
    assert led.fees == sum((e.exec_fee for e in venue.engine.executions if e.exec_type == "Trade"),
                           D(0))
