"""A delisting on the paper venue, as Bybit carries it out at the instrument's ``deliveryTime``:
open orders cancelled, the position closed at the newest mark by a ``Delivery`` execution (no
fee), the realised PnL booked into the wallet, the status ``Closed`` and later orders refused."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest
from tm_common.testing.bars import H4_MS as H4
from tm_exchange_sim.matching import (  # the engine's instruments: specs it enforces
    DEFAULT_INSTRUMENTS,
    MatchingEngine,
    SlippageModel,
    VenueError,
    signed_size,
)
from tm_exchange_sim.matching.models import BUY, LIMIT, MARKET, SELL, Bar, OrderRequest

BIG = D(10) ** 8


def engine(delivery_ms: int, now_ms: int = 0) -> MatchingEngine:
    specs = {**DEFAULT_INSTRUMENTS,
             "BTCUSDT": replace(DEFAULT_INSTRUMENTS["BTCUSDT"], delivery_time_ms=delivery_ms)}
    eng = MatchingEngine(specs, initial_balance=BIG, slippage=SlippageModel(D(0)),
                         default_leverage=D(10), now_ms=now_ms)
    eng.step(now_ms + H4, {"BTCUSDT": Bar(now_ms, now_ms + H4, *[D(20000)] * 4),
                           "ETHUSDT": Bar(now_ms, now_ms + H4, *[D(1000)] * 4)})
    return eng


def bar(open_ms: int, close: str) -> dict[str, Bar]:
    c = D(close)
    return {"BTCUSDT": Bar(open_ms, open_ms + H4, c, c, c, c),
            "ETHUSDT": Bar(open_ms, open_ms + H4, *[D(1000)] * 4)}


def test_at_a_bar_close_the_position_is_delivered_at_that_close():
    eng = engine(delivery_ms=3 * H4)
    eng.place_order(OrderRequest("BTCUSDT", BUY, MARKET, D("0.010")))      # long at 20,000
    eng.place_order(OrderRequest("ETHUSDT", BUY, MARKET, D("0.10")))
    resting = eng.place_order(OrderRequest("BTCUSDT", BUY, LIMIT, D("0.010"), price=D(15000)))
    wallet = eng.account.wallet_balance
    eng.step(2 * H4, bar(H4, "20500"))
    assert eng.instruments["BTCUSDT"].status == "Trading"
    eng.step(3 * H4, bar(2 * H4, "21000"))                      # the bar closing at delivery
    (ex,) = [e for e in eng.executions if e.exec_type == "Delivery"]
    assert (ex.side, ex.exec_qty, ex.exec_price, ex.exec_fee, ex.exec_time_ms) == (
        SELL, D("0.010"), D(21000), 0, 3 * H4)
    assert (ex.order_id, ex.order_link_id, ex.closed_size) == ("", "", D("0.010"))
    assert signed_size(eng, "BTCUSDT") == 0
    assert eng.account.wallet_balance == wallet + D("0.010") * (21000 - 20000)
    assert eng.orders[resting.order_id].status == "Cancelled"
    assert eng.orders[resting.order_id].cancel_type == "CancelBySettle"
    assert eng.closed_pnl[-1].closed_size == D("0.010")
    assert eng.instruments["BTCUSDT"].status == "Closed"
    assert signed_size(eng, "ETHUSDT") == D("0.10")                # other listings untouched
    with pytest.raises(VenueError, match="not trading"):
        eng.place_order(OrderRequest("BTCUSDT", BUY, MARKET, D("0.010")))
    eng.step(4 * H4, bar(3 * H4, "22000"))                      # once only
    assert len([e for e in eng.executions if e.exec_type == "Delivery"]) == 1


def test_inside_a_bar_it_is_delivered_before_the_bar_at_the_previous_close():
    """A short delivered two hours into a bar: at the previous close (the newest mark then),
    and the bar's resting order on it, which would have filled, was cancelled first."""
    eng = engine(delivery_ms=2 * H4 + H4 // 2)
    eng.place_order(OrderRequest("BTCUSDT", SELL, MARKET, D("0.020")))     # short at 20,000
    eng.step(2 * H4, bar(H4, "19000"))
    resting = eng.place_order(OrderRequest("BTCUSDT", BUY, LIMIT, D("0.020"), price=D(18500)))
    eng.step(3 * H4, {"BTCUSDT": Bar(2 * H4, 3 * H4, D(19000), D(19000), D(18000), D(18200)),
                      "ETHUSDT": Bar(2 * H4, 3 * H4, *[D(1000)] * 4)})
    (ex,) = [e for e in eng.executions if e.exec_type == "Delivery"]
    assert (ex.side, ex.exec_qty, ex.exec_price, ex.exec_time_ms) == (
        BUY, D("0.020"), D(19000), 2 * H4 + H4 // 2)
    assert eng.orders[resting.order_id].status == "Cancelled"
    assert signed_size(eng, "BTCUSDT") == 0


def test_a_flat_account_is_only_closed_and_a_clock_past_the_delisting_starts_closed():
    eng = engine(delivery_ms=2 * H4)
    eng.step(2 * H4, bar(H4, "20000"))
    assert eng.instruments["BTCUSDT"].status == "Closed"
    assert not [e for e in eng.executions if e.exec_type == "Delivery"]
    late = engine(delivery_ms=H4, now_ms=2 * H4)
    assert late.instruments["BTCUSDT"].status == "Closed"
    assert late.instruments["ETHUSDT"].status == "Trading"
