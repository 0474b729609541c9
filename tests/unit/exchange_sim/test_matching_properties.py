"""Properties of the pure matching core: fees, reduce-only, round trips, lot filters, funding."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_exchange_sim.matching import (
    BUY,
    DEFAULT_INSTRUMENTS,
    LIMIT,
    MARKET,
    SELL,
    Bar,
    FeeSchedule,
    MatchingEngine,
    OrderRequest,
    SlippageModel,
    VenueError,
    signed_size,
)

H4 = 4 * 3600 * 1000
BTC = DEFAULT_INSTRUMENTS["BTCUSDT"]
BIG = D(100000000)

sides = st.sampled_from([BUY, SELL])
btc_qty = st.integers(min_value=1, max_value=50_000).map(lambda n: n * BTC.qty_step)
btc_price = st.integers(min_value=100_000, max_value=1_200_000).map(lambda n: n * BTC.tick_size)


def engine(price: D, *, balance: D = BIG, slippage_bps: D = D(0), seed: int = 0,
           leverage: D = D(10), funding: dict | None = None) -> MatchingEngine:
    eng = MatchingEngine(DEFAULT_INSTRUMENTS, initial_balance=balance,
                         slippage=SlippageModel(slippage_bps), default_leverage=leverage,
                         seed=seed, funding_rates=funding)
    eng.step(H4, {"BTCUSDT": Bar(0, H4, price, price, price, price)})
    return eng


def market(side: str, qty: D, **kw) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, MARKET, qty, **kw)


@given(side=sides, qty=btc_qty, price=btc_price)
def test_taker_fee_is_qty_times_price_times_rate_exactly(side, qty, price):
    eng = engine(price)
    order = eng.place_order(market(side, qty))
    (ex,) = eng.executions
    assert ex.exec_price == price
    assert ex.exec_fee == qty * price * D("0.00055")
    assert order.cum_exec_fee == ex.exec_fee
    assert eng.account.wallet_balance == BIG - ex.exec_fee


@given(side=sides, qty=btc_qty, price=btc_price, ticks=st.integers(1, 500))
def test_resting_limit_fills_at_its_price_with_maker_fee_once_crossed(side, qty, price, ticks):
    eng = engine(price)
    away = ticks * BTC.tick_size
    limit = price - away if side == BUY else price + away
    order = eng.place_order(OrderRequest("BTCUSDT", side, LIMIT, qty, price=limit))
    assert order.status == "New" and not eng.executions
    # a bar that does not reach the limit leaves it resting
    eng.step(2 * H4, {"BTCUSDT": Bar(H4, 2 * H4, price, price, price, price)})
    assert order.status == "New"
    low, high = (limit, price) if side == BUY else (price, limit)
    eng.step(3 * H4, {"BTCUSDT": Bar(2 * H4, 3 * H4, price, high, low, price)})
    assert order.status == "Filled"
    (ex,) = eng.executions
    assert ex.exec_price == limit and ex.is_maker
    assert ex.exec_fee == qty * limit * D("0.0002")


@given(side=sides, qty=btc_qty, price=btc_price, leverage=st.sampled_from([D(1), D(5), D(50)]))
def test_round_trip_at_the_same_price_loses_exactly_the_fees(side, qty, price, leverage):
    eng = engine(price, leverage=leverage)
    eng.place_order(market(side, qty))
    eng.place_order(market(SELL if side == BUY else BUY, qty, reduce_only=True))
    fees = sum(e.exec_fee for e in eng.executions)
    assert fees == 2 * qty * price * D("0.00055")
    assert eng.account.wallet_balance == BIG - fees
    assert signed_size(eng, "BTCUSDT") == 0
    assert eng.wallet()["equity"] == BIG - fees


ops = st.lists(st.tuples(sides, btc_qty, st.booleans(), st.integers(-200, 200)),
               min_size=1, max_size=25)


@given(ops=ops, price=btc_price)
@settings(max_examples=150)
def test_reduce_only_never_increases_the_position(ops, price):
    eng = engine(price, slippage_bps=D(3))
    for i, (side, qty, reduce_only, move) in enumerate(ops):
        before = signed_size(eng, "BTCUSDT")
        try:
            eng.place_order(market(side, qty, reduce_only=reduce_only))
        except VenueError as e:
            assert reduce_only and e.ret_code == 110017
            assert before == 0 or (before > 0) == (side == BUY)
            continue
        after = signed_size(eng, "BTCUSDT")
        if reduce_only:
            assert abs(after) < abs(before)
            assert after == 0 or (after > 0) == (before > 0)  # never flips
        new = price + move * BTC.tick_size
        eng.step((i + 2) * H4, {"BTCUSDT": Bar((i + 1) * H4, (i + 2) * H4, new, new, new, new)})


@given(ops=ops, price=btc_price)
@settings(max_examples=100)
def test_cash_is_conserved_once_flat(ops, price):
    """Flat again, the wallet moved by exactly the trades' cash flows minus their fees."""
    eng = engine(price, slippage_bps=D(2))
    for i, (side, qty, _, move) in enumerate(ops):
        eng.place_order(market(side, qty))
        new = price + move * BTC.tick_size
        eng.step((i + 2) * H4, {"BTCUSDT": Bar((i + 1) * H4, (i + 2) * H4, new, new, new, new)})
    while size := signed_size(eng, "BTCUSDT"):
        chunk = min(abs(size), BTC.max_mkt_order_qty)
        eng.place_order(market(SELL if size > 0 else BUY, chunk, reduce_only=True))
    flows = sum((-1 if e.side == BUY else 1) * e.exec_qty * e.exec_price - e.exec_fee
                for e in eng.executions)
    assert eng.account.wallet_balance - BIG == flows


@given(side=sides, qty=btc_qty, price=btc_price, bps=st.integers(0, 100))
def test_slippage_is_adverse_and_on_the_tick_grid(side, qty, price, bps):
    eng = engine(price, slippage_bps=D(bps))
    eng.place_order(market(side, qty))
    fill = eng.executions[0].exec_price
    assert fill % BTC.tick_size == 0
    assert (fill >= price) if side == BUY else (fill <= price)
    assert abs(fill - price) <= price * bps / D(10_000) + BTC.tick_size


@given(qty=st.decimals(min_value=D("0.0001"), max_value=D(2000), places=4))
def test_lot_filters_accept_exactly_the_valid_quantities(qty):
    """At 100 USDT the 5 USDT minimum notional is 0.05 BTC: a lot-valid order below it is a
    110094, any lot-filter violation a 10001, the rest is accepted."""
    eng = engine(D("100.0"))
    lot_ok = qty % BTC.qty_step == 0 and BTC.min_order_qty <= qty <= BTC.max_mkt_order_qty
    notional_ok = qty * D(100) >= BTC.min_notional
    try:
        eng.place_order(market(BUY, qty))
    except VenueError as e:
        assert e.ret_code == (10001 if not lot_ok else 110094)
        assert lot_ok is False or notional_ok is False
    else:
        assert lot_ok and notional_ok


@pytest.mark.parametrize("qty,price,fragment", [
    ("0.0015", None, "qtyStep"),
    ("0.0001", None, "qtyStep"),
    ("0", None, "greater than 0"),
    ("1.0005", "100.0", "qtyStep"),
    ("1191", "100.0", "maximum"),
    ("120", None, "maximum"),          # above maxMktOrderQty for a market order
    ("0.010", "100.05", "tickSize"),
])
def test_lot_filter_rejections_are_param_errors(qty, price, fragment):
    eng = engine(D("100.0"))
    kind = LIMIT if price else MARKET
    with pytest.raises(VenueError) as info:
        eng.place_order(OrderRequest("BTCUSDT", BUY, kind, D(qty), price=D(price) if price
                                     else None))
    assert info.value.ret_code == 10001 and fragment in info.value.ret_msg


def test_minimum_order_qty_is_enforced():
    from dataclasses import replace

    inst = replace(BTC, min_order_qty=D("0.005"))
    eng = MatchingEngine({"BTCUSDT": inst}, initial_balance=BIG)
    eng.step(H4, {"BTCUSDT": Bar(0, H4, D(1000), D(1000), D(1000), D(1000))})
    with pytest.raises(VenueError) as info:
        eng.place_order(market(BUY, D("0.004")))
    assert info.value.ret_code == 10001 and "minimum" in info.value.ret_msg
    eng.place_order(market(BUY, D("0.005")))


@given(side=sides, qty=btc_qty, price=btc_price,
       rate=st.decimals(min_value=D("-0.01"), max_value=D("0.01"), places=8))
def test_funding_sign_longs_pay_when_rate_positive(side, qty, price, rate):
    eng = engine(price, funding={"BTCUSDT": {3 * H4: rate}})
    eng.place_order(market(side, qty))
    before = eng.account.wallet_balance
    eng.step(2 * H4, {"BTCUSDT": Bar(H4, 2 * H4, price, price, price, price)})  # no funding
    assert eng.account.wallet_balance == before
    eng.step(3 * H4, {})                         # a gap slot: funding still settles
    paid = before - eng.account.wallet_balance
    signed = qty if side == BUY else -qty
    assert paid == signed * price * rate
    if rate:
        assert (paid > 0) == ((side == BUY) == (rate > 0))
    assert eng.executions[-1].exec_type == "Funding" and eng.executions[-1].exec_fee == paid


def test_hourly_funding_settles_at_each_hour_on_the_position_held_through_the_bar():
    """An instrument with a 1 h funding interval: the three settlements inside a 4 h bar are
    booked at their own times, at the newest mark then (the previous close), on the position
    held through the bar; the one at the close after the bar's fills, at the close. With
    settlement only at bar closes (the engine before), three of every four were never paid."""
    h = H4 // 4
    rates = {t: D("0.0001") for t in range(H4 + h, 3 * H4 + 1, h)}      # 05:00 .. 12:00
    eng = engine(D(20000), funding={"BTCUSDT": rates})
    eng.place_order(market(BUY, D("0.010")))                          # at 04:00, at 20,000
    resting = eng.place_order(OrderRequest("BTCUSDT", SELL, LIMIT, D("0.005"), price=D(20100)))
    eng.step(2 * H4, {"BTCUSDT": Bar(H4, 2 * H4, D(20000), D(20200), D(19900), D(20100))})
    funding = [e for e in eng.executions if e.exec_type == "Funding"]
    assert [(e.exec_time_ms, e.exec_qty, e.exec_price) for e in funding] == [
        (H4 + h, D("0.010"), D(20000)), (H4 + 2 * h, D("0.010"), D(20000)),
        (H4 + 3 * h, D("0.010"), D(20000)),                 # inside: before the limit filled
        (2 * H4, D("0.005"), D(20100))]                      # at the close: after it, at it
    assert eng.orders[resting.order_id].status == "Filled"
    eng.step(3 * H4, {"BTCUSDT": Bar(2 * H4, 3 * H4, *[D(20100)] * 4)})
    times = [e.exec_time_ms for e in eng.executions if e.exec_type == "Funding"]
    assert times == sorted(rates) and eng.account.cum_funding == sum(
        (e.exec_fee for e in eng.executions if e.exec_type == "Funding"), D(0))


def test_duplicate_order_link_id_and_insufficient_balance():
    eng = engine(D("50000.0"), balance=D(1000))
    eng.place_order(market(BUY, D("0.001"), order_link_id="intent-1"))
    with pytest.raises(VenueError) as dup:
        eng.place_order(market(BUY, D("0.001"), order_link_id="intent-1"))
    assert dup.value.ret_code == 110072
    # 0.2 BTC at 50k, 10x: 1000 margin + fee > ~999.97 available
    with pytest.raises(VenueError) as broke:
        eng.place_order(market(BUY, D("0.2")))
    assert broke.value.ret_code == 110007
    # closing needs no margin even when the account could not open it
    eng.place_order(market(SELL, D("0.001"), reduce_only=True))
    assert len(eng.orders) == 2


def test_reduce_only_is_trimmed_to_the_position():
    eng = engine(D("50000.0"))
    eng.place_order(market(BUY, D("0.005")))
    order = eng.place_order(market(SELL, D("1.000"), reduce_only=True))
    assert order.qty == D("0.005") and signed_size(eng, "BTCUSDT") == 0
    with pytest.raises(VenueError) as info:
        eng.place_order(market(SELL, D("0.001"), reduce_only=True))
    assert info.value.ret_code == 110017


def test_ids_are_deterministic_per_seed():
    def run(seed):
        eng = engine(D("50000.0"), seed=seed)
        eng.place_order(market(BUY, D("0.010")))
        eng.place_order(OrderRequest("BTCUSDT", SELL, LIMIT, D("0.010"), price=D("51000.0")))
        return [o.order_id for o in eng.orders.values()], [e.exec_id for e in eng.executions]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_cancel_and_events():
    eng = engine(D("50000.0"))
    order = eng.place_order(OrderRequest("BTCUSDT", BUY, LIMIT, D("0.010"), price=D("49000.0"),
                                         order_link_id="l1"))
    eng.pop_events()
    eng.cancel_order("BTCUSDT", order_link_id="l1")
    assert order.status == "Cancelled"
    assert [t for t, _ in eng.pop_events()] == ["order", "wallet"]
    with pytest.raises(VenueError) as info:
        eng.cancel_order("BTCUSDT", order_id=order.order_id)
    assert info.value.ret_code == 110001


def test_fee_schedule_defaults_are_bybits():
    fees = FeeSchedule()
    assert (fees.taker_rate, fees.maker_rate) == (D("0.00055"), D("0.0002"))
