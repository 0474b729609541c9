"""Venue records, lot filters, the order request and position differences."""

import dataclasses
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tm_common.events import OrderApproved
from tm_common.instruments import InstrumentSpec
from tm_executor.domain.orders import (
    BadVenueRecord,
    VenueExecution,
    VenueOrder,
    check_intent,
    fills_complete,
    order_params,
    trade_fills,
)
from tm_executor.domain.reconcile import ExchangePosition, position_diffs

BTC = InstrumentSpec(symbol="BTCUSDT", base_coin="BTC", qty_step=D("0.001"),
                     min_order_qty=D("0.001"), max_order_qty=D(1190), max_mkt_order_qty=D(119),
                     tick_size=D("0.10"), min_notional=D(0))


def intent(qty="0.010", order_type="Market", price=None, **kw) -> OrderApproved:
    return OrderApproved(intent_id="i-1", instrument="BTCUSDT", bar_time_ms=1, side="Buy",
                         qty=D(qty), order_type=order_type,
                         price=D(price) if price else None, target_qty=D(qty), **kw)


def order(status="Filled", qty="0.01", cum="0.01", order_type="Market") -> VenueOrder:
    return VenueOrder.from_bybit({"orderId": "o1", "orderLinkId": "tm-x", "symbol": "BTCUSDT",
                                  "side": "Buy", "orderType": order_type, "orderStatus": status,
                                  "qty": qty, "cumExecQty": cum})


def execution(exec_id="e1", qty="0.01", order_id="o1", exec_type="Trade", t=5) -> VenueExecution:
    return VenueExecution.from_bybit({
        "execId": exec_id, "orderId": order_id, "orderLinkId": "tm-x", "symbol": "BTCUSDT",
        "side": "Buy", "execQty": qty, "execPrice": "16500.5", "execFee": "0.09",
        "isMaker": False, "execTime": str(t), "execType": exec_type, "leavesQty": "0"})


def test_parse_bybit_records_exactly():
    o = order()
    assert o.terminal and o.qty == D("0.01") and o.cum_exec_qty == D("0.01")
    e = execution()
    assert e.price == D("16500.5") and e.fee == D("0.09") and e.exec_time_ms == 5 and e.is_trade
    assert VenueExecution.from_bybit({**_raw(), "isMaker": "true"}).is_maker


def _raw():
    return {"execId": "e", "orderId": "o", "symbol": "S", "side": "Buy", "execQty": "1",
            "execPrice": "2", "execTime": "3"}


@pytest.mark.parametrize("bad", [{"execQty": "abc"}, {"execPrice": "NaN"}, {"execTime": "soon"},
                                 {"execId": None}])
def test_malformed_records_raise_one_error(bad):
    raw = {k: v for k, v in {**_raw(), **bad}.items() if v is not None}
    with pytest.raises(BadVenueRecord):
        VenueExecution.from_bybit(raw)


def test_fills_complete_needs_terminal_and_sum():
    assert fills_complete(order(), [execution()])
    assert not fills_complete(order(), [])
    assert not fills_complete(order(status="New", cum="0"), [])
    assert fills_complete(order(status="Cancelled", cum="0", order_type="Limit"), [])
    two = [execution("a", "0.004"), execution("b", "0.006")]
    assert fills_complete(order(), two)


def test_trade_fills_unique_sorted_and_only_this_orders_trades():
    execs = [execution("b", t=7), execution("a", t=7), execution("a", t=7),
             execution("f", exec_type="Funding"), execution("x", order_id="o2"),
             execution("c", t=1)]
    assert [e.exec_id for e in trade_fills(execs, "o1")] == ["c", "a", "b"]


def test_check_intent_lot_filters():
    assert check_intent(intent(), BTC) is None
    assert "qtyStep" in check_intent(intent("0.0105"), BTC)
    assert "minOrderQty" in check_intent(intent("0.0005"), BTC) or \
        "qtyStep" in check_intent(intent("0.0005"), BTC)
    assert "max Market" in check_intent(intent("120"), BTC)
    assert check_intent(intent("120", "Limit", "16000.1"), BTC) is None
    assert "tickSize" in check_intent(intent("1", "Limit", "16000.15"), BTC)
    assert "price" in check_intent(intent("1", "Limit"), BTC)
    assert "no instrument" in check_intent(intent(), None)


@given(st.integers(min_value=1, max_value=119_000))
def test_any_multiple_of_the_step_within_limits_passes(n):
    assert check_intent(intent(str(D(n) * BTC.qty_step)), BTC) is None


def test_order_params_are_bybit_strings():
    p = order_params(intent("0.010"), "tm-abc")
    assert p == {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                 "qty": "0.010", "orderLinkId": "tm-abc", "positionIdx": 0, "timeInForce": "IOC"}
    lp = order_params(intent("1", "Limit", "16000.1", reduce_only=True), "tm-abc")
    assert lp["price"] == "16000.1" and lp["timeInForce"] == "GTC" and lp["reduceOnly"] is True




def pos(symbol, size, side, avg="100"):
    return ExchangePosition.from_bybit({"symbol": symbol, "size": size, "side": side,
                                        "avgPrice": avg})


def test_position_diffs_signed_and_exchange_wins():
    ex = [pos("BTCUSDT", "0.01", "Buy"), pos("ETHUSDT", "2", "Sell"), pos("SOLUSDT", "0", "")]
    assert ex[1].qty == D(-2)
    diffs = position_diffs(ex, {"ETHUSDT": D(-2), "SOLUSDT": D(5)})
    assert [(d.symbol, d.exchange_qty, d.portfolio_qty) for d in diffs] == [
        ("BTCUSDT", D("0.01"), D(0)), ("SOLUSDT", D(0), D(5))]
    assert "unknown to the portfolio" in diffs[0].reason and "absent" in diffs[1].reason
    assert position_diffs(ex, {"BTCUSDT": D("0.010"), "ETHUSDT": D(-2)}) == []
    assert position_diffs(ex, {}, symbols=["ETHUSDT"])[0].symbol == "ETHUSDT"


def test_check_intent_minimum_order_value():
    lot = dataclasses.replace(BTC, min_notional=D(5))
    # Market: valued at the newest close; 0.001 × 2900 = 2.9 USDT < 5
    why = check_intent(intent("0.001"), lot, D(2900))
    assert why is not None and "minNotionalValue 5" in why and "2.9000" in why
    assert check_intent(intent("0.002"), lot, D(2900)) is None             # 5.8 USDT
    assert check_intent(intent("0.001"), lot, None) is None                # no close: unchecked
    # Limit: valued at its own price, whatever the close
    assert "minNotionalValue" in check_intent(intent("0.001", "Limit", "4000.0"), lot, D(99999))
    assert check_intent(intent("0.001", "Limit", "5000.0"), lot, D(1)) is None
    # reduce-only closes are exempt, as on Bybit
    assert check_intent(intent("0.001", reduce_only=True), lot, D(2900)) is None
    assert check_intent(intent("0.001"), BTC, D(2900)) is None             # no minimum known
