"""A position's stop loss resting on the venue (Bybit ``POST /v5/position/trading-stop``, Full
mode): set, checked and cancelled; triggered by a bar that reaches it, before the bar's resting
orders, closing the whole position by the venue's own market order at the stop (at the open of a
bar that gapped beyond it) with the engine's slippage and taker fee; cleared when the position
closes or flips; and, when no stop is set, the engine does exactly what it did without it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest
from pybit.exceptions import InvalidRequestError
from tm_app.venue import InProcessBybit
from tm_common.history import BAR_INTERVAL_MS, HistoryBar
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.journal import Journal
from tm_exchange_sim.matching import DEFAULT_INSTRUMENTS, MatchingEngine, SlippageModel, signed_size
from tm_exchange_sim.matching.errors import PARAMS_ERROR, TPSL_NOT_MODIFIED, RetCodeError
from tm_exchange_sim.matching.models import BUY, LIMIT, MARKET, SELL, Bar, OrderRequest
from tm_exchange_sim.restore import replay_journal
from tm_exchange_sim.routes_trade import trade_handlers
from tm_exchange_sim.serialise import execution_dict, order_dict, position_dict
from tm_exchange_sim.state import SimState

H4 = BAR_INTERVAL_MS
T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC
BTC = "BTCUSDT"
TICK = DEFAULT_INSTRUMENTS[BTC].tick_size
BIG = D(10) ** 8


def engine() -> MatchingEngine:
    """BTCUSDT at 20,000 (one flat bar closed), 2 bps slippage, Bybit's default fees."""
    eng = MatchingEngine(DEFAULT_INSTRUMENTS, initial_balance=BIG, slippage=SlippageModel(D(2)),
                         default_leverage=D(10))
    eng.step(H4, {BTC: Bar(0, H4, *[D(20000)] * 4)})
    return eng


def step(eng: MatchingEngine, o: str, h: str, low: str, c: str) -> None:
    """Close the next BTCUSDT bar (open, high, low, close)."""
    eng.step(eng.now_ms + H4, {BTC: Bar(eng.now_ms, eng.now_ms + H4, D(o), D(h), D(low), D(c))})


def market(eng: MatchingEngine, side: str, qty: str, **kw) -> None:
    eng.place_order(OrderRequest(BTC, side, MARKET, D(qty), **kw))


def refused(call, *args) -> RetCodeError:
    with pytest.raises(RetCodeError) as e:
        call(*args)
    return e.value


# ---- triggering --------------------------------------------------------------------------
def test_a_long_stop_closes_the_whole_position_at_the_stop_with_slippage_and_taker_fee():
    eng = engine()
    market(eng, BUY, "0.010")                                   # long at 20,004.0
    eng.set_trading_stop(BTC, D(19000))
    assert eng.account.position(BTC).stop_loss == D(19000)
    eng.pop_events()
    step(eng, "19800", "19900", "18900", "19100")
    (stop_ex,) = eng.executions[1:]
    price = D("18996.2")                                        # 19,000 x (1 - 2 bps), tick below
    assert price == eng.slippage.fill_price(SELL, D(19000), TICK)
    fee = D("0.010") * price * eng.fees.taker_rate
    assert (stop_ex.side, stop_ex.exec_qty, stop_ex.exec_price, stop_ex.exec_fee) == (
        SELL, D("0.010"), price, fee)
    assert fee == D("0.010") * price * D("0.00055")
    assert (stop_ex.is_maker, stop_ex.exec_time_ms, stop_ex.closed_size) == (False, 2 * H4,
                                                                             D("0.010"))
    assert (stop_ex.create_type, stop_ex.stop_order_type) == ("CreateByStopLoss", "StopLoss")
    order = eng.orders[stop_ex.order_id]
    assert (order.side, order.order_type, order.qty, order.time_in_force, order.order_link_id,
            order.reduce_only, order.close_on_trigger, order.status) == (
        SELL, MARKET, D("0.010"), "IOC", "", True, True, "Filled")
    assert (order.stop_order_type, order.create_type, order.trigger_price, order.trigger_by) == (
        "StopLoss", "CreateByStopLoss", D(19000), "LastPrice")
    pos = eng.account.position(BTC)
    assert (pos.size, pos.stop_loss, position_dict(pos, eng.marks[BTC])["stopLoss"]) == (
        0, 0, "")
    entry = eng.executions[0]
    assert eng.account.wallet_balance == BIG - entry.exec_fee + D("0.010") * (
        price - entry.exec_price) - fee
    assert [t for t, _ in eng.pop_events()] == ["order", "execution", "position", "wallet"]
    od, ed = order_dict(order), execution_dict(stop_ex)
    assert (od["stopOrderType"], od["createType"], od["triggerPrice"], od["triggerBy"]) == (
        "StopLoss", "CreateByStopLoss", "19000", "LastPrice")
    assert (ed["stopOrderType"], ed["createType"], ed["execType"]) == (
        "StopLoss", "CreateByStopLoss", "Trade")
    step(eng, "18000", "18000", "15000", "15000")               # once only
    assert len(eng.executions) == 2


def test_a_short_stop_triggers_on_the_high_and_buys_back_above_the_stop():
    eng = engine()
    market(eng, SELL, "0.020")
    eng.set_trading_stop(BTC, D("21000.5"), "MarkPrice")
    step(eng, "20500", "21000.4", "20400", "20900")             # a tick short: nothing
    assert signed_size(eng, BTC) == D("-0.020") and len(eng.executions) == 1
    step(eng, "20900", "21000.5", "20800", "20950")             # the high reaches it
    stop_ex = eng.executions[-1]
    price = D("21004.8")             # 21,000.5 x (1 + 2 bps) = 21,004.7001, the tick above
    assert price == eng.slippage.fill_price(BUY, D("21000.5"), TICK)
    assert (stop_ex.side, stop_ex.exec_qty, stop_ex.exec_price, stop_ex.exec_fee) == (
        BUY, D("0.020"), price, D("0.020") * price * eng.fees.taker_rate)
    assert eng.orders[stop_ex.order_id].trigger_by == "MarkPrice"
    assert signed_size(eng, BTC) == 0 and eng.account.position(BTC).stop_loss == 0


@pytest.mark.parametrize(("side", "stop", "bar", "reference"), [
    (BUY, "19000", ("18500", "18700", "18400", "18600"), "18500"),     # opened below the stop
    (SELL, "21000", ("21500", "21600", "21400", "21550"), "21500"),    # opened above it
])
def test_a_bar_that_gaps_beyond_the_stop_fills_at_its_open(side, stop, bar, reference):
    eng = engine()
    market(eng, side, "0.010")
    eng.set_trading_stop(BTC, D(stop))
    step(eng, *bar)
    stop_ex = eng.executions[-1]
    close = SELL if side == BUY else BUY
    assert stop_ex.exec_price == eng.slippage.fill_price(close, D(reference), TICK)
    assert stop_ex.exec_price == (D("18496.3") if side == BUY else D("21504.3"))
    assert signed_size(eng, BTC) == 0


def test_the_stop_goes_before_the_bars_resting_orders():
    """A reduce-only take-profit resting above and a buy limit resting below, a bar through
    all three: the stop closes the long first, so the reduce-only order has nothing left to
    reduce, and the buy opens a new long."""
    eng = engine()
    market(eng, BUY, "0.010")
    tp = eng.place_order(OrderRequest(BTC, SELL, LIMIT, D("0.010"), price=D(20500),
                                      reduce_only=True))
    dip = eng.place_order(OrderRequest(BTC, BUY, LIMIT, D("0.005"), price=D(18500)))
    eng.set_trading_stop(BTC, D(19000))
    step(eng, "20000", "20600", "18400", "18600")
    stop_ex, dip_ex = eng.executions[1:]
    assert stop_ex.stop_order_type == "StopLoss" and dip_ex.order_id == dip.order_id
    assert eng.orders[tp.order_id].cancel_type == "CancelByReduceOnly"
    assert signed_size(eng, BTC) == D("0.005")
    assert eng.account.position(BTC).stop_loss == 0        # the new long has no stop


def test_the_live_feed_triggers_the_stop_of_a_pushed_bar():
    st = live_venue()
    trade(st, "/v5/order/create", symbol=BTC, side="Buy", orderType="Market", qty="0.01")
    trade(st, "/v5/position/trading-stop", symbol=BTC, tpslMode="Full", positionIdx=0,
          stopLoss="93000")
    st.push_bars([(BTC, hbar(T0 + H4, "94000", "92500", "94500"))])
    (row,) = trade(st, "/v5/position/list", method="GET", symbol=BTC)["list"]
    assert (D(row["size"]), row["stopLoss"]) == (0, "")
    stop_ex = st.engine.executions[-1]
    assert (stop_ex.stop_order_type, stop_ex.exec_price, stop_ex.exec_time_ms) == (
        "StopLoss", D("92981.4"), T0 + 2 * H4)


# ---- what keeps and what clears the stop -------------------------------------------------
def test_adding_or_reducing_on_the_same_side_keeps_the_stop_and_it_closes_the_whole_size():
    eng = engine()
    market(eng, BUY, "0.010")
    eng.set_trading_stop(BTC, D(19000))
    market(eng, BUY, "0.020")                 # more than the size: still the same side
    market(eng, SELL, "0.005", reduce_only=True)
    assert eng.account.position(BTC).stop_loss == D(19000)
    assert position_dict(eng.account.position(BTC), eng.marks[BTC])["stopLoss"] == "19000"
    step(eng, "19500", "19600", "18990", "19200")
    assert eng.executions[-1].exec_qty == D("0.025") and signed_size(eng, BTC) == 0


@pytest.mark.parametrize(("orders", "size_after", "executions"), [
    ([(SELL, "0.010"), (BUY, "0.010")], "0.010", 3),   # closed, then a new position: no stop
    ([(SELL, "0.030")], "-0.020", 2),                   # flipped to short 0.020
], ids=["close", "flip"])
def test_a_close_or_a_flip_clears_the_stop(orders, size_after, executions):
    eng = engine()
    market(eng, BUY, "0.010")
    eng.set_trading_stop(BTC, D(19000))
    for side, qty in orders:
        market(eng, side, qty)
    pos = eng.account.position(BTC)
    assert (pos.size, pos.stop_loss, pos.sl_trigger_by) == (D(size_after), 0, "")
    step(eng, "19500", "19600", "18000", "18100")      # through the old stop: nothing
    assert signed_size(eng, BTC) == D(size_after) and len(eng.executions) == executions


def test_zero_cancels_the_stop():
    eng = engine()
    market(eng, BUY, "0.010")
    eng.set_trading_stop(BTC, D(19000))
    eng.set_trading_stop(BTC, D(0))
    assert eng.account.position(BTC).stop_loss == 0
    step(eng, "19500", "19600", "18000", "18100")
    assert signed_size(eng, BTC) == D("0.010")


# ---- refusals ----------------------------------------------------------------------------
def test_the_engine_refuses_what_cannot_protect_the_position():
    eng = engine()
    e = refused(eng.set_trading_stop, BTC, D(19000))
    assert (e.ret_code, e.ret_msg) == (PARAMS_ERROR, "can not set tp/sl/ts for zero position")
    assert refused(eng.set_trading_stop, "DOGEUSDT", D(1)).ret_msg == "symbol invalid: DOGEUSDT"
    market(eng, BUY, "0.010")
    for bad in ("19000.05", "-19000"):
        e = refused(eng.set_trading_stop, BTC, D(bad))
        assert e.ret_code == PARAMS_ERROR and "multiple of tickSize 0.10" in e.ret_msg
    for bad in ("20000", "20500"):            # at or above the last price (20,000)
        e = refused(eng.set_trading_stop, BTC, D(bad))
        assert (e.ret_code, e.ret_msg) == (PARAMS_ERROR, f"StopLoss:{bad} set for Buy position "
                                           "should lower than base_price:20000")
    assert refused(eng.set_trading_stop, BTC, D(0)).ret_code == TPSL_NOT_MODIFIED  # none set
    eng.set_trading_stop(BTC, D(19000))
    e = refused(eng.set_trading_stop, BTC, D("19000.0"))
    assert (e.ret_code, e.ret_msg) == (TPSL_NOT_MODIFIED, "not modified")
    eng.set_trading_stop(BTC, D("19000"), "MarkPrice")          # another trigger: modified
    market(eng, SELL, "0.020")                                   # short now
    e = refused(eng.set_trading_stop, BTC, D("19999.9"))
    assert (e.ret_code, e.ret_msg) == (PARAMS_ERROR, "StopLoss:19999.9 set for Sell position "
                                       "should greater than base_price:20000")
    eng.instruments[BTC] = replace(eng.instruments[BTC], status="Settling")
    assert "not trading" in refused(eng.set_trading_stop, BTC, D(21000)).ret_msg


@pytest.mark.parametrize(("params", "message"), [
    ({"tpslMode": "Partial"}, "supports Full only"),
    ({"tpslMode": ""}, "'tpslMode' failed"),
    ({"positionIdx": 1}, "position idx not match position mode"),
    ({"slOrderType": "Limit"}, "slOrderType Limit is not supported by the exchange sim"),
    ({"takeProfit": "99000"}, "takeProfit is not supported by the exchange sim"),
    ({"trailingStop": "500"}, "trailingStop is not supported by the exchange sim"),
    ({"slTriggerBy": "Bid"}, "slTriggerBy invalid"),
    ({"category": "spot"}, "supports 'linear' only"),
    ({"stopLoss": "abc"}, "stopLoss invalid"),
    ({"stopLoss": None}, "'stopLoss' failed"),
])
def test_the_route_refuses_what_the_sim_does_not_model(params, message):
    st = live_venue()
    trade(st, "/v5/order/create", symbol=BTC, side="Buy", orderType="Market", qty="0.01")
    with pytest.raises(RetCodeError, match=message) as e:
        trade(st, "/v5/position/trading-stop", **{**STOP, **params})
    assert e.value.ret_code == PARAMS_ERROR
    assert st.engine.account.position(BTC).stop_loss == 0


def test_the_route_takes_the_fields_it_models_and_answers_an_empty_result():
    st = live_venue()
    trade(st, "/v5/order/create", symbol=BTC, side="Buy", orderType="Market", qty="0.01")
    assert trade(st, "/v5/position/trading-stop", **STOP, takeProfit="0", trailingStop="0",
                 slOrderType="Market", slTriggerBy="IndexPrice") == {}
    pos = st.engine.account.position(BTC)
    assert (pos.stop_loss, pos.sl_trigger_by) == (D(93000), "IndexPrice")
    with pytest.raises(RetCodeError) as e:
        trade(st, "/v5/position/trading-stop", **STOP, slTriggerBy="IndexPrice")
    assert e.value.ret_code == TPSL_NOT_MODIFIED


def test_the_in_process_venue_serves_pybits_set_trading_stop():
    """The backtest's venue dispatches pybit's own method to the same handler."""
    venue = InProcessBybit(live_venue())
    venue.place_order(category="linear", symbol=BTC, side="Buy", orderType="Market", qty="0.01")
    r = venue.set_trading_stop(category="linear", symbol=BTC, tpslMode="Full", positionIdx=0,
                               stopLoss="93000", slTriggerBy="LastPrice", slOrderType="Market")
    assert (r["retCode"], r["result"]) == (0, {})
    (row,) = venue.get_positions(category="linear", symbol=BTC)["result"]["list"]
    assert row["stopLoss"] == "93000"
    with pytest.raises(InvalidRequestError) as same:
        venue.set_trading_stop(category="linear", symbol=BTC, tpslMode="Full", positionIdx=0,
                               stopLoss="93000")
    assert same.value.status_code == TPSL_NOT_MODIFIED


# ---- nothing changes without a stop ------------------------------------------------------
def test_without_a_stop_a_bar_through_every_price_consumes_no_id_and_no_event():
    eng = engine()
    market(eng, BUY, "0.010")
    eng.pop_events()
    counters = dict(eng.ids._counters)
    step(eng, "20000", "40000", "100", "20000")
    assert eng.ids._counters == counters and eng.pop_events() == []
    assert len(eng.orders) == 1 and len(eng.executions) == 1
    assert order_dict(eng.orders[eng.executions[0].order_id])["createType"] == "CreateByUser"
    assert execution_dict(eng.executions[0])["stopOrderType"] == ""


def test_a_run_without_stops_gives_the_same_ids_as_one_whose_stop_never_triggers():
    """Two runs, the second with a stop set on ETHUSDT that never triggers: the orders,
    executions and wallet are the same, id for id (but for Bybit's global ``seq``, which the
    position update of the stop's setting took one of)."""
    def run(with_stop: bool) -> MatchingEngine:
        eng = engine()
        eng.step(2 * H4, {"ETHUSDT": Bar(H4, 2 * H4, *[D(1000)] * 4)})
        market(eng, BUY, "0.010")
        eng.place_order(OrderRequest("ETHUSDT", SELL, MARKET, D("0.10")))
        if with_stop:
            eng.set_trading_stop("ETHUSDT", D(1200))
        eng.step(3 * H4, {BTC: Bar(2 * H4, 3 * H4, D(20000), D(20100), D(15000), D(19000)),
                          "ETHUSDT": Bar(2 * H4, 3 * H4, *[D(1000)] * 4)})
        market(eng, SELL, "0.010")
        return eng
    plain, stopped = run(False), run(True)
    def no_seq(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seq"} for row in rows]
    assert no_seq([order_dict(o) for o in plain.orders.values()]) == no_seq(
        [order_dict(o) for o in stopped.orders.values()])
    assert no_seq([execution_dict(e) for e in plain.executions]) == no_seq(
        [execution_dict(e) for e in stopped.executions])
    assert len(plain.executions) == 3 and plain.executions[-1].exec_price == D("18996.2")
    assert plain.wallet() == stopped.wallet()


# ---- journal -----------------------------------------------------------------------------
def test_a_venue_restored_from_its_journal_keeps_the_stop_and_replays_refusals(tmp_path):
    path = tmp_path / "venue.jsonl"
    first = live_venue(path)
    trade(first, "/v5/order/create", symbol=BTC, side="Buy", orderType="Market", qty="0.01")
    with pytest.raises(RetCodeError):
        trade(first, "/v5/position/trading-stop", **{**STOP, "stopLoss": "95000"})  # above
    trade(first, "/v5/position/trading-stop", **STOP)
    first.journal.close()
    lines = path.read_text().splitlines()
    assert sum('"/v5/position/trading-stop"' in line for line in lines) == 2
    second = live_venue(path)
    assert second.engine.account.position(BTC).stop_loss == D(93000)
    second.push_bars([(BTC, hbar(T0 + H4, "94000", "92500", "94500"))])
    first.journal = None
    first.push_bars([(BTC, hbar(T0 + H4, "94000", "92500", "94500"))])
    assert [execution_dict(e) for e in second.engine.executions] == [
        execution_dict(e) for e in first.engine.executions]
    assert second.engine.executions[-1].stop_order_type == "StopLoss"


def test_a_reset_clears_the_stop():
    st = live_venue()
    trade(st, "/v5/order/create", symbol=BTC, side="Buy", orderType="Market", qty="0.01")
    trade(st, "/v5/position/trading-stop", **STOP)
    st.reset()
    assert st.engine.account.positions.get(BTC) is None


# ---- helpers: a paper venue (live feed) and its request handlers --------------------------
STOP = {"symbol": BTC, "tpslMode": "Full", "positionIdx": 0, "stopLoss": "93000"}


def hbar(open_ms: int, close: str, low: str, high: str) -> HistoryBar:
    return HistoryBar(open_ms, close, high, low, close, "10")


def live_venue(journal=None) -> SimState:
    """A paper venue with BTCUSDT at 94,000 (2 bps slippage), restored from ``journal``."""
    st = SimState(ExchangeSimSettings.from_values(sim_feed="live", sim_symbols=[BTC, "ETHUSDT"],
                                                  sim_slippage_bps=D(2), sim_seed=7))
    if journal is not None:
        replay_journal(st, Journal(journal))
    if not st.engine.marks:
        st.push_bars([(BTC, hbar(T0, "94000", "93500", "94500"))])
    return st


def trade(st: SimState, path: str, method: str = "POST", **params) -> dict:
    return trade_handlers(st)[(method, path)]({"category": "linear", **params})
