"""The exchange sim's live feed (TM_SIM_FEED=live): a paper venue whose marks are pushed bars."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from tm_common.history import BAR_INTERVAL_MS, HistoryBar
from tm_exchange_sim.app import create_app
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.live import PushedFunding
from tm_exchange_sim.matching import DEFAULT_INSTRUMENTS
from tm_exchange_sim.matching.models import BUY, LIMIT, MARKET, SELL, OrderRequest
from tm_exchange_sim.state import SimState

T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC: bars close at 04:00, 08:00, ...
H4 = BAR_INTERVAL_MS


def bar(open_ms: int, close: str, low: str | None = None, high: str | None = None) -> HistoryBar:
    c = Decimal(close)
    return HistoryBar(open_time_ms=open_ms, open=close, high=high or str(c * Decimal("1.01")),
                      low=low or str(c * Decimal("0.99")), close=close, volume="10")


def live_state(**kw) -> SimState:
    return SimState(ExchangeSimSettings.from_values(sim_feed="live", **kw))


def test_market_order_fills_at_the_pushed_close_with_slippage_and_taker_fee():
    st = live_state(sim_slippage_bps=Decimal(2))
    with pytest.raises(Exception, match="no market price"):
        st.engine.place_order(OrderRequest("BTCUSDT", BUY, MARKET, Decimal("0.01")))
    st.push_bars([("BTCUSDT", bar(T0, "94000.0"))])
    assert st.engine.marks == {"BTCUSDT": Decimal("94000.0")}
    assert (st.clock_ms, st.now_ms) == (T0, T0 + H4)
    order = st.engine.place_order(OrderRequest("BTCUSDT", BUY, MARKET, Decimal("0.01")))
    ex = st.engine.executions[-1]
    assert order.status == "Filled" and ex.exec_time_ms == T0 + H4
    assert ex.exec_price == Decimal("94018.8")           # 94000 x (1 + 2 bps), tick 0.1 up
    assert ex.exec_fee == Decimal("0.01") * ex.exec_price * Decimal("0.00055")
    st.push_bars([("BTCUSDT", bar(T0 + H4, "95000.0"))])   # the mark moves with the next bar
    st.engine.place_order(OrderRequest("BTCUSDT", SELL, MARKET, Decimal("0.01")))
    assert st.engine.executions[-1].exec_price == Decimal("94981.0")   # 95000 x (1 - 2 bps)


def test_repeats_are_ignored_symbols_interleave_and_the_clock_only_moves_forward():
    st = live_state()
    steps = st.push_bars([("BTCUSDT", bar(T0, "100")), ("BTCUSDT", bar(T0 + H4, "101"))])
    assert [s.open_ms for s in steps] == [T0, T0 + H4]
    assert st.push_bars([("BTCUSDT", bar(T0, "999"))]) == []                # a repeat
    st.push_bars([("ETHUSDT", bar(T0, "3000"))])        # a backfill of the next symbol
    assert st.engine.marks == {"BTCUSDT": Decimal("101"), "ETHUSDT": Decimal("3000")}
    assert st.clock_ms == T0 + H4 and st.engine.now_ms == T0 + 2 * H4
    assert st.market is not None and st.market.counts.repeats == 1
    assert [b.close for b in st.feed.klines("BTCUSDT", st.clock_ms, None, None, 10)] == ["101", "100"]


def test_a_resting_limit_order_fills_when_a_pushed_bar_trades_through_it():
    st = live_state()
    st.push_bars([("ETHUSDT", bar(T0, "3000"))])
    order = st.engine.place_order(OrderRequest("ETHUSDT", BUY, LIMIT, Decimal("1"),
                                               price=Decimal("2950")))
    assert order.is_open
    st.push_bars([("ETHUSDT", bar(T0 + H4, "2990", low="2940", high="3010"))])
    assert not order.is_open and st.engine.executions[-1].exec_price == Decimal("2950")
    assert st.engine.executions[-1].is_maker


def _long_btc(st: SimState) -> None:
    st.push_bars([("BTCUSDT", bar(T0, "100000"))])
    st.engine.place_order(OrderRequest("BTCUSDT", BUY, MARKET, Decimal("1")))


def test_funding_settles_at_its_bar_close_whichever_arrives_first():
    early, late = live_state(sim_slippage_bps=Decimal(0)), live_state(sim_slippage_bps=Decimal(0))
    due = T0 + 2 * H4                                       # 08:00 UTC, a funding time
    for st in (early, late):
        _long_btc(st)
    early.push_funding([PushedFunding("BTCUSDT", due, Decimal("0.0001"))])
    assert early.market is not None and early.market.counts.funding_pending == 1
    early.push_bars([("BTCUSDT", bar(T0 + H4, "101000"))])
    late.push_bars([("BTCUSDT", bar(T0 + H4, "101000"))])
    late.push_funding([PushedFunding("BTCUSDT", due, Decimal("0.0001"))])
    for st in (early, late):
        fund = [e for e in st.engine.executions if e.exec_type == "Funding"]
        assert [(e.exec_time_ms, e.exec_price, e.exec_fee) for e in fund] == \
            [(due, Decimal("101000"), Decimal("10.1000"))]      # long pays 1 x 101000 x 1e-4
        st.push_funding([PushedFunding("BTCUSDT", due, Decimal("0.0001"))])   # a repeat
        assert len([e for e in st.engine.executions if e.exec_type == "Funding"]) == 1


def test_hourly_funding_inside_a_bar_settles_when_that_bar_arrives_at_its_own_time():
    """A 1 h funding interval: the rates for 05:00, 06:00 and 07:00 arrive before the bar that
    holds them (04:00-08:00) and settle when it arrives, before its fills, at the mark then,
    booked at their own times; 08:00's at the close. Before, they waited for a bar closing at
    their time, which never comes: pending for ever, never paid."""
    st = live_state(sim_slippage_bps=Decimal(0))
    _long_btc(st)                                           # long 1 BTC at 100,000 (04:00)
    hours = [T0 + H4 + k * H4 // 4 for k in (1, 2, 3, 4)]   # 05:00 .. 08:00
    st.push_funding([PushedFunding("BTCUSDT", t, Decimal("0.0001")) for t in hours])
    assert st.market is not None and st.market.counts.funding_pending == 4
    st.push_bars([("BTCUSDT", bar(T0 + H4, "101000"))])
    fund = [e for e in st.engine.executions if e.exec_type == "Funding"]
    assert [(e.exec_time_ms, e.exec_price) for e in fund] == [
        (hours[0], Decimal("100000")), (hours[1], Decimal("100000")),
        (hours[2], Decimal("100000")), (hours[3], Decimal("101000"))]
    assert st.market.counts.funding_pending == 0 and st.market.counts.funding_settled == 4
    late = PushedFunding("BTCUSDT", T0 + 2 * H4 + H4 // 4, Decimal("0.0001"))   # 09:00
    st.push_bars([("BTCUSDT", bar(T0 + 2 * H4, "101000"))])                   # 08:00-12:00
    st.push_funding([late])                        # after the bar that held it: stale
    assert st.market.counts.funding_stale == 1 and st.market.counts.funding_settled == 4


def test_a_stale_rate_is_counted_not_settled_and_no_position_pays_nothing():
    st = live_state()
    _long_btc(st)
    st.push_bars([("BTCUSDT", bar(T0 + H4, "100000")), ("BTCUSDT", bar(T0 + 2 * H4, "100000"))])
    st.push_funding([PushedFunding("BTCUSDT", T0 + 2 * H4, Decimal("0.0001"))])  # stale now
    flat = live_state()
    flat.push_bars([("ETHUSDT", bar(T0 + H4, "3000"))])
    flat.push_funding([PushedFunding("ETHUSDT", T0 + 2 * H4, Decimal("0.0001"))])
    assert st.market is not None and flat.market is not None
    assert st.market.counts.funding_stale == 1 and flat.market.counts.funding_settled == 0
    assert not [e for e in st.engine.executions + flat.engine.executions
                if e.exec_type == "Funding"]


def test_routes_push_bars_and_each_mode_refuses_the_other_modes_control():
    live = TestClient(create_app(ExchangeSimSettings.from_values(sim_feed="live")))
    row = {"symbol": "SOLUSDT", "open_time_ms": T0, "open": "190", "high": "195", "low": "185",
           "close": "192.5", "volume": "7"}
    r = live.post("/sim/bars", json={"bars": [row, row]})
    assert r.status_code == 200 and r.json()["taken"] == 1 and r.json()["live"]["repeats"] == 1
    assert live.get("/sim/clock").json()["marks"] == {"SOLUSDT": "192.5"}
    status = live.get("/status").json()
    assert status["feed"] == "live" and status["marks"] == {"SOLUSDT": "192.5"}
    assert live.post("/sim/clock", json={"steps": 1}).status_code == 400
    assert live.post("/sim/bars", json={"bars": [{**row, "open_time_ms": T0 + 1}]}).status_code == 400
    assert live.post("/sim/bars", json={"bars": [{**row, "high": "1"}]}).status_code == 400
    assert live.post("/sim/bars", json={"bars": [{**row, "symbol": "XRPUSDT"}]}).status_code == 400
    assert live.post("/sim/funding", json={"rates": [{"symbol": "SOLUSDT", "settle_time_ms": T0,
                                                      "rate": "0.0001"}]}).status_code == 200
    hist = TestClient(create_app(ExchangeSimSettings.from_values(
        sim_symbols=["BTCUSDT"], sim_start_ms=T0)))
    assert hist.post("/sim/bars", json={"bars": [row]}).status_code == 400


def test_reset_keeps_the_marks_and_a_fresh_account():
    st = live_state()
    _long_btc(st)
    st.reset(initial_balance=Decimal(5000))
    assert st.engine.marks == {"BTCUSDT": Decimal("100000")}
    assert st.engine.wallet()["equity"] == Decimal(5000) and not st.engine.executions
    with pytest.raises(ValueError, match="no start time"):
        st.reset(start_ms=T0)
    assert set(DEFAULT_INSTRUMENTS) >= set(st.instruments)
