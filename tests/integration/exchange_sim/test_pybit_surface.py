"""The surface a bot uses beyond placing orders, through pybit against the sim over HTTP: amend,
cancel-all, order history (Bybit's retention), the execution list's 7-day window, closed PnL,
server time, the forming kline row, the min notional (110094), per-endpoint rate limits, the 403
IP ban, the venue's clock in every answer, and instruments for a symbol the project does not
ship."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from pybit.exceptions import FailedRequestError, InvalidRequestError
from tm_common.history import load_bars
from tm_common.instruments import DEFAULT_INSTRUMENTS, InstrumentSpec
from tm_common.testing.sim import run_sim

FIRST_MS = 1640995200000
H4 = 4 * 3600 * 1000
DAY = 24 * 3600 * 1000
REPO_INSTRUMENTS = str(Path(__file__).resolve().parents[3] / "services/exchange_sim/instruments")


def bar(symbol: str, open_ms: int):
    (b,) = load_bars(symbol, open_ms, open_ms)
    return b


def buy_limit(session, qty: str, price: str, link: str, **kw):
    return session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                               orderType="Limit", qty=qty, price=price, orderLinkId=link, **kw)


def test_amend_changes_price_and_qty_and_refuses_what_bybit_refuses(sim, session):
    sim.advance(1)
    oid = buy_limit(session, "0.010", "30000.0", "am-1")["result"]["orderId"]
    r = session.amend_order(category="linear", symbol="BTCUSDT", orderLinkId="am-1",
                            qty="0.020", price="31000.0")
    assert r["retCode"] == 0 and r["result"] == {"orderId": oid, "orderLinkId": "am-1"}
    (o,) = session.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (o["qty"], o["price"], o["orderStatus"]) == ("0.020", "31000.0", "New")
    for kw, code in (({"price": "31000.0", "qty": "0.020"}, 10001),   # unchanged
                     ({"price": "31000.05"}, 10001),                  # off the tick grid
                     ({"qty": "0.0005"}, 10001),                      # below min qty
                     ({"qty": "0.001", "price": "1000.0"}, 110094)):  # 1 USDT < 5 USDT
        with pytest.raises(InvalidRequestError) as info:
            session.amend_order(category="linear", symbol="BTCUSDT", orderId=oid, **kw)
        assert info.value.status_code == code, kw
    # an amended price that crosses the last price fills at once, as a taker
    mark = Decimal(bar("BTCUSDT", FIRST_MS + H4).close)
    session.amend_order(category="linear", symbol="BTCUSDT", orderId=oid, price="60000.0")
    (ex,) = session.get_executions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert ex["isMaker"] is False and mark <= Decimal(ex["execPrice"]) <= Decimal("60000")
    with pytest.raises(InvalidRequestError) as gone:            # filled: nothing to amend
        session.amend_order(category="linear", symbol="BTCUSDT", orderId=oid, qty="0.030")
    assert gone.value.status_code == 110001


def test_cancel_all_by_symbol_and_by_settle_coin(sim, session):
    sim.advance(1)
    ids = {buy_limit(session, "0.010", f"{30000 + i}.0", f"ca-{i}")["result"]["orderId"]
           for i in range(3)}
    eth = session.place_order(category="linear", symbol="ETHUSDT", side="Buy",
                              orderType="Limit", qty="0.10", price="2000.00")["result"]
    with pytest.raises(InvalidRequestError) as info:               # linear needs a filter
        session.cancel_all_orders(category="linear")
    assert info.value.status_code == 10001
    r = session.cancel_all_orders(category="linear", symbol="BTCUSDT")["result"]
    assert r["success"] == "1" and {o["orderId"] for o in r["list"]} == ids
    left = session.get_open_orders(category="linear", settleCoin="USDT")["result"]["list"]
    assert [o["orderId"] for o in left] == [eth["orderId"]]
    r = session.cancel_all_orders(category="linear", settleCoin="USDT")["result"]
    assert [o["orderId"] for o in r["list"]] == [eth["orderId"]]
    assert session.cancel_all_orders(category="linear", symbol="BTCUSDT")["result"]["list"] == []


def test_order_history_keeps_bybits_retention_on_the_venue_clock(sim, session):
    sim.advance(1)
    filled = session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                                 orderType="Market", qty="0.010")["result"]["orderId"]
    cancelled = buy_limit(session, "0.010", "30000.0", "h-cxl")["result"]["orderId"]
    session.cancel_order(category="linear", symbol="BTCUSDT", orderId=cancelled)
    resting = buy_limit(session, "0.010", "30001.0", "h-open")["result"]["orderId"]

    def history(**kw):
        return [o["orderId"] for o in
                session.get_order_history(category="linear", **kw)["result"]["list"]]

    assert history() == [cancelled, filled]                  # newest first; open ones are not
    assert history(orderStatus="Filled") == [filled]
    assert resting not in history(symbol="BTCUSDT")
    sim.advance(7)                                           # over 24 h: the unfilled one goes
    assert history() == [filled]
    sim.advance(36)                                          # over 7 days: out of the window
    assert history() == []
    created = FIRST_MS + 2 * H4                              # ... but kept (it has a fill)
    assert history(startTime=created - H4) == [filled]
    with pytest.raises(InvalidRequestError) as info:
        session.get_order_history(category="linear", startTime=created, endTime=created + 8 * DAY)
    assert info.value.status_code == 10001


def test_execution_list_answers_bybits_7_day_window_unless_asked_by_order(sim, session):
    sim.advance(1)
    order_id = session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                                   orderType="Market", qty="0.010")["result"]["orderId"]
    executed = FIRST_MS + 2 * H4

    def execs(**kw):                                         # the trades (funding goes on)
        return [e["orderId"] for e in
                session.get_executions(category="linear", **kw)["result"]["list"]
                if e["execType"] == "Trade"]

    assert execs(symbol="BTCUSDT") == [order_id]            # neither time: the last 7 days
    sim.advance(43)                                          # over 7 days later
    assert execs(symbol="BTCUSDT") == []
    assert execs(symbol="BTCUSDT", startTime=executed - H4) == [order_id]  # 7 days from it
    assert execs(symbol="BTCUSDT", endTime=executed + 6 * DAY) == [order_id]
    assert execs(orderId=order_id) == [order_id]             # by order: no window
    assert execs(symbol="BTCUSDT", startTime=executed + 1, endTime=executed + 7 * DAY) == []
    with pytest.raises(InvalidRequestError) as info:
        session.get_executions(category="linear", symbol="BTCUSDT", startTime=executed,
                               endTime=executed + 7 * DAY + 1)
    assert info.value.status_code == 10001


def test_closed_pnl_books_price_pnl_less_fees(sim, session):
    sim.advance(1)
    session.place_order(category="linear", symbol="ETHUSDT", side="Buy", orderType="Market",
                        qty="1.00")
    sim.advance(1)                                            # no funding at this close
    close_id = session.place_order(category="linear", symbol="ETHUSDT", side="Sell",
                                   orderType="Market", qty="0.40",
                                   reduceOnly=True)["result"]["orderId"]
    ex = {e["orderId"]: e for e in
          session.get_executions(category="linear", symbol="ETHUSDT")["result"]["list"]}
    (row,) = session.get_closed_pnl(category="linear", symbol="ETHUSDT")["result"]["list"]
    entry_ex = next(e for oid, e in ex.items() if oid != close_id)
    entry, exit_ = Decimal(entry_ex["execPrice"]), Decimal(ex[close_id]["execPrice"])
    open_fee = Decimal(entry_ex["execFee"]) * Decimal("0.4")
    close_fee = Decimal(ex[close_id]["execFee"])
    assert row["orderId"] == close_id and row["side"] == "Sell" and row["closedSize"] == "0.40"
    assert Decimal(row["avgEntryPrice"]) == entry and Decimal(row["avgExitPrice"]) == exit_
    expected = (exit_ - entry) * Decimal("0.4") - open_fee - close_fee
    assert abs(Decimal(row["closedPnl"]) - expected) < Decimal("0.00000002")
    assert Decimal(row["openFee"]) == open_fee and Decimal(row["closeFee"]) == close_fee
    assert row["createdTime"] == str(FIRST_MS + 3 * H4)        # the venue's time of the close


def test_server_time_is_the_signing_clock_and_answers_carry_the_venue_clock(sim, session):
    before = time.time_ns()
    r = session.get_server_time()
    after = time.time_ns()
    nano = int(r["result"]["timeNano"])
    assert before - 10**6 <= nano <= after + 10**6
    assert int(r["result"]["timeSecond"]) == nano // 10**9
    sim.advance(2)
    venue_now = FIRST_MS + 3 * H4                             # the close of the latest bar
    assert session.get_positions(category="linear", symbol="BTCUSDT")["time"] == venue_now
    assert session.get_kline(category="linear", symbol="BTCUSDT", interval="240")["time"] == \
        venue_now
    with pytest.raises(InvalidRequestError) as info:          # a refusal too
        session.get_positions(category="linear", symbol="NOPEUSDT")
    assert info.value.status_code == 10001


def test_kline_answers_the_forming_bar_first(sim, session):
    sim.advance(2)
    rows = session.get_kline(category="linear", symbol="ETHUSDT", interval="240",
                             limit=3)["result"]["list"]
    forming_open = FIRST_MS + 3 * H4
    nxt = bar("ETHUSDT", forming_open)
    assert rows[0] == [str(forming_open), nxt.open, nxt.open, nxt.open, nxt.open, "0", "0"]
    assert [int(r[0]) for r in rows[1:]] == [FIRST_MS + 2 * H4, FIRST_MS + H4]
    closed_only = session.get_kline(category="linear", symbol="ETHUSDT", interval="240",
                                    end=forming_open - 1)["result"]["list"]
    assert int(closed_only[0][0]) == FIRST_MS + 2 * H4


def test_min_notional_is_110094_and_closing_orders_are_exempt(sim, session):
    sim.advance(1)
    price = Decimal(bar("SOLUSDT", FIRST_MS + H4).close)         # ~ 170 USDT in 2022-01
    assert Decimal("0.1") * price > 5
    with pytest.raises(InvalidRequestError) as info:             # 0.1 x 40 = 4 USDT
        session.place_order(category="linear", symbol="SOLUSDT", side="Buy", orderType="Limit",
                            qty="0.1", price="40.000")
    assert info.value.status_code == 110094 and "notional" in info.value.message
    session.place_order(category="linear", symbol="SOLUSDT", side="Buy", orderType="Market",
                        qty="0.1")
    # a reduce-only limit far below the minimum value still closes
    r = session.place_order(category="linear", symbol="SOLUSDT", side="Sell", orderType="Limit",
                            qty="0.1", price="1.000", reduceOnly=True)
    assert r["retCode"] == 0
    assert sim.get("/sim/orders")["count"] == 2


def test_per_endpoint_limits_follow_bybits_table(sim):
    sim.post("/sim/faults", {"rate_limit_per_s": None})
    time.sleep(1.1)         # the windows roll over one second: earlier tests' calls age out
    s = sim.session(retry_codes={10002}, return_response_headers=True)
    _, _, h = s.cancel_all_orders(category="linear", symbol="BTCUSDT")
    assert h["X-Bapi-Limit"] == "10" and h["X-Bapi-Limit-Status"] == "9"
    assert abs(int(h["X-Bapi-Limit-Reset-Timestamp"]) - time.time() * 1000) < 5_000   # now
    _, _, h = s.get_open_orders(category="linear", symbol="BTCUSDT")
    assert h["X-Bapi-Limit"] == "50" and h["X-Bapi-Limit-Status"] == "49"

    def cancel_all(_):
        try:
            s.cancel_all_orders(category="linear", symbol="BTCUSDT")
        except InvalidRequestError as e:
            return e
        return None

    with ThreadPoolExecutor(max_workers=20) as pool:   # 20 at once: over 10 in a second
        refusals = [e for e in pool.map(cancel_all, range(20)) if e is not None]
    assert refusals and {e.status_code for e in refusals} == {10006}
    refused = refusals[0]
    assert refused.resp_headers["X-Bapi-Limit"] == "10"
    assert refused.resp_headers["X-Bapi-Limit-Status"] == "0"
    reset = int(refused.resp_headers["X-Bapi-Limit-Reset-Timestamp"])
    assert time.time() * 1000 - 1000 < reset <= time.time() * 1000 + 1000   # a slot frees


def test_ip_ban_fault_answers_403_until_lifted(sim, session):
    answer = sim.post("/sim/faults", {"ip_ban_s": 30, "ip_ban_now": True})
    assert answer["ip_banned_until_ms"] > time.time() * 1000 + 25_000
    for call in (lambda: session.get_server_time(),
                 lambda: session.get_positions(category="linear", symbol="BTCUSDT")):
        with pytest.raises(FailedRequestError) as info:
            call()
        assert info.value.status_code == 403
    sim.post("/sim/faults", {"ip_ban_s": 0, "ip_ban_now": True})
    assert session.get_server_time()["retCode"] == 0


def test_ip_limit_bans_a_caller_over_it(sim, session):
    sim.post("/sim/faults", {"ip_limit_per_5s": 5, "ip_ban_s": 30})
    try:
        for _ in range(5):
            session.get_server_time()
        with pytest.raises(FailedRequestError) as info:
            session.get_server_time()
        assert info.value.status_code == 403
    finally:
        sim.post("/sim/faults", {"ip_limit_per_5s": None, "ip_ban_s": 0, "ip_ban_now": True})
    assert session.get_server_time()["retCode"] == 0


def test_shipped_instrument_files_parse_and_match_the_table():
    from tm_exchange_sim.instruments_config import load_instruments_file

    shipped = load_instruments_file(f"{REPO_INSTRUMENTS}/linear.json")
    assert shipped == {s: InstrumentSpec.from_info(spec.info())
                       for s, spec in DEFAULT_INSTRUMENTS.items()}
    docs = load_instruments_file(f"{REPO_INSTRUMENTS}/bybit-docs-example-btcusdt.json")
    assert docs["BTCUSDT"].max_mkt_order_qty == Decimal(500)


def test_any_symbol_with_a_history_and_a_recorded_snapshot(tmp_path):
    """A symbol the project does not ship (derived filters from its history), next to BTC from
    Bybit's documented instruments-info answer (market maximum 500, not the table's 119)."""
    hist = tmp_path / "history"
    hist.mkdir()
    rows = ["timestamp,open,high,low,close,volume"]
    price = Decimal("0.08123")
    for i in range(20):
        o, c = price, price * Decimal("1.01") if i % 2 else price * Decimal("0.995")
        rows.append(f"{FIRST_MS + i * H4},{o:.5f},{max(o, c) * Decimal('1.002'):.5f},"
                    f"{min(o, c) * Decimal('0.998'):.5f},{c:.5f},1000000")
        price = c
    (hist / "DOGEUSDT_4h.csv").write_text("\n".join(rows) + "\n")
    btc = load_bars("BTCUSDT", FIRST_MS, FIRST_MS + 19 * H4)
    (hist / "BTCUSDT_4h.csv").write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{b.open_time_ms},{b.open},{b.high},{b.low},{b.close},{b.volume}\n" for b in btc))
    with run_sim(tmp_path, TM_SIM_HISTORY_DIR=str(hist),
                 TM_SIM_SYMBOLS=json.dumps(["BTCUSDT", "DOGEUSDT"]),
                 TM_SIM_INSTRUMENTS_FILE=f"{REPO_INSTRUMENTS}/bybit-docs-example-btcusdt.json"
                 ) as sim:
        s = sim.session()
        info = {i["symbol"]: i for i in
                s.get_instruments_info(category="linear")["result"]["list"]}
        assert info["BTCUSDT"]["lotSizeFilter"]["maxMktOrderQty"] == "500.000"
        doge = info["DOGEUSDT"]
        assert doge["priceFilter"]["tickSize"] == "0.0000001"
        assert doge["lotSizeFilter"]["qtyStep"] == "1000"
        assert doge["lotSizeFilter"]["minNotionalValue"] == "5"
        sim.advance(1)
        with pytest.raises(InvalidRequestError) as info_:
            s.place_order(category="linear", symbol="DOGEUSDT", side="Buy", orderType="Market",
                          qty="1500")
        assert info_.value.status_code == 10001                    # not a multiple of 1000
        r = s.place_order(category="linear", symbol="DOGEUSDT", side="Buy", orderType="Market",
                          qty="2000")
        assert r["retCode"] == 0
        (pos,) = s.get_positions(category="linear", symbol="DOGEUSDT")["result"]["list"]
        assert pos["size"] == "2000"
        # TM_SIM_KLINE_FORMING_ROW is on by default: the forming bar first (as Bybit), then
        # the closed bars, newest = the clock's
        rows = s.get_kline(category="linear", symbol="DOGEUSDT", interval="240")["result"]["list"]
        assert [int(r[0]) for r in rows] == [FIRST_MS + 2 * H4, FIRST_MS + H4, FIRST_MS]
