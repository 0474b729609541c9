"""pybit's HTTP client against the sim over real HTTP: orders, queries, errors, faults."""

from __future__ import annotations

import shutil
import subprocess
import time
from decimal import Decimal

import httpx
import pytest
import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from tm_common.history import load_bars, load_funding

FIRST_MS = 1640995200000
H4 = 4 * 3600 * 1000


def csv_bar(symbol: str, open_ms: int):
    (bar,) = load_bars(symbol, open_ms, open_ms)
    return bar


def test_market_and_limit_orders_round_trip(sim, session):
    sim.advance(1)  # clock at the second bar; orders fill at its close
    mark = Decimal(csv_bar("BTCUSDT", FIRST_MS + H4).close)

    r = session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                            orderType="Market", qty="0.010", orderLinkId="it-mkt-1")
    assert r["retCode"] == 0 and r["result"]["orderLinkId"] == "it-mkt-1"
    market_id = r["result"]["orderId"]

    limit_px = "40000.0"
    r = session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
                            qty="0.005", price=limit_px, orderLinkId="it-lmt-1")
    limit_id = r["result"]["orderId"]

    open_orders = session.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert [o["orderId"] for o in open_orders] == [limit_id]
    assert open_orders[0]["orderStatus"] == "New" and open_orders[0]["price"] == limit_px
    filled = session.get_open_orders(category="linear", symbol="BTCUSDT",
                                     orderLinkId="it-mkt-1")["result"]["list"]
    assert filled[0]["orderStatus"] == "Filled" and filled[0]["orderId"] == market_id

    r = session.cancel_order(category="linear", symbol="BTCUSDT", orderId=limit_id)
    assert r["result"]["orderId"] == limit_id
    assert session.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"] == []
    with pytest.raises(InvalidRequestError) as gone:
        session.cancel_order(category="linear", symbol="BTCUSDT", orderId=limit_id)
    assert gone.value.status_code == 110001

    (ex,) = session.get_executions(category="linear", symbol="BTCUSDT")["result"]["list"]
    fill = Decimal(ex["execPrice"])
    assert fill >= mark and fill - mark <= mark * Decimal("0.0002") + Decimal("0.1")  # 2 bps
    assert Decimal(ex["execFee"]) == Decimal("0.010") * fill * Decimal("0.00055")
    assert ex["orderId"] == market_id and ex["isMaker"] is False

    (pos,) = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert pos["side"] == "Buy" and Decimal(pos["size"]) == Decimal("0.010")
    assert Decimal(pos["avgPrice"]) == fill and pos["markPrice"] == str(mark)

    (wallet,) = session.get_wallet_balance(accountType="UNIFIED")["result"]["list"]
    assert wallet["accountType"] == "UNIFIED"
    assert Decimal(wallet["totalWalletBalance"]) == Decimal(100000) - Decimal(ex["execFee"])
    assert Decimal(wallet["totalAvailableBalance"]) < Decimal(wallet["totalEquity"])

    venue = sim.get("/sim/orders")
    assert venue["count"] == 2
    assert {o["orderStatus"] for o in venue["list"]} == {"Filled", "Cancelled"}


def test_resting_limit_fills_when_a_later_bar_trades_through(sim, session):
    nxt = csv_bar("ETHUSDT", FIRST_MS + H4)
    price = (Decimal(nxt.low) + Decimal("0.01")).quantize(Decimal("0.01"))
    session.place_order(category="linear", symbol="ETHUSDT", side="Buy", orderType="Limit",
                        qty="0.10", price=str(price), orderLinkId="eth-dip")
    sim.advance(1)
    (order,) = session.get_open_orders(category="linear", symbol="ETHUSDT",
                                       orderLinkId="eth-dip")["result"]["list"]
    assert order["orderStatus"] == "Filled" and Decimal(order["avgPrice"]) == price
    (ex,) = session.get_executions(category="linear", symbol="ETHUSDT",
                                   execType="Trade")["result"]["list"]
    assert ex["isMaker"] is True and Decimal(ex["execFee"]) == Decimal("0.10") * price * \
        Decimal("0.0002")
    # the bar closed at 08:00 UTC, a funding time: the new long paid size x close x rate
    (funding,) = session.get_executions(category="linear", symbol="ETHUSDT",
                                        execType="Funding")["result"]["list"]
    (rate,) = [f.rate_decimal for f in load_funding("ETHUSDT") if f.time_ms == FIRST_MS + 2 * H4]
    assert Decimal(funding["execFee"]) == Decimal("0.10") * Decimal(nxt.close) * rate
    assert funding["execTime"] == str(FIRST_MS + 2 * H4)


def test_set_leverage_and_switch_mode(sim, session):
    assert session.set_leverage(category="linear", symbol="SOLUSDT", buyLeverage="3",
                                sellLeverage="3")["retCode"] == 0
    with pytest.raises(InvalidRequestError) as same:
        session.set_leverage(category="linear", symbol="SOLUSDT", buyLeverage="3",
                             sellLeverage="3")
    assert same.value.status_code == 110043
    (pos,) = session.get_positions(category="linear", symbol="SOLUSDT")["result"]["list"]
    assert pos["leverage"] == "3" and pos["size"] == "0"
    with pytest.raises(InvalidRequestError) as mode:
        session.switch_position_mode(category="linear", symbol="SOLUSDT", mode=0)
    assert mode.value.status_code == 110025


def test_duplicate_order_link_id_is_110072(sim, session):
    args = {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Market",
            "qty": "0.001", "orderLinkId": "intent-abc"}
    session.place_order(**args)
    with pytest.raises(InvalidRequestError) as info:
        session.place_order(**args)
    assert info.value.status_code == 110072
    assert sim.get("/sim/orders")["count"] == 1


def test_wrong_secret_is_10004_and_unknown_key_10003(sim):
    with pytest.raises(InvalidRequestError) as bad_sign:
        sim.session(api_secret="not-the-secret").get_positions(category="linear",
                                                               symbol="BTCUSDT")
    assert bad_sign.value.status_code == 10004
    with pytest.raises(InvalidRequestError) as bad_key:
        sim.session(api_key="someone-else").get_wallet_balance(accountType="UNIFIED")
    assert bad_key.value.status_code == 10003


def test_stale_timestamp_is_10002(sim, session):
    from tm_exchange_sim.signing import rest_signature

    KEY, SECRET = session.api_key, session.api_secret
    ts = str(int(time.time() * 1000) - 60_000)
    query = "accountType=UNIFIED"
    headers = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000",
               "X-BAPI-SIGN": rest_signature(SECRET, ts, KEY, "5000", query)}
    body = httpx.get(f"{sim.url}/v5/account/wallet-balance?{query}", headers=headers).json()
    assert body["retCode"] == 10002 and set(body) == {"retCode", "retMsg", "result",
                                                      "retExtInfo", "time"}


def test_bad_qty_step_and_unknown_symbol_are_10001(sim, session):
    with pytest.raises(InvalidRequestError) as step:
        session.place_order(category="linear", symbol="SOLUSDT", side="Buy",
                            orderType="Market", qty="1.25")
    assert step.value.status_code == 10001 and "qtyStep" in step.value.message
    with pytest.raises(InvalidRequestError) as tick:
        session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                            orderType="Limit", qty="0.001", price="40000.05")
    assert tick.value.status_code == 10001
    with pytest.raises(InvalidRequestError) as sym:
        session.place_order(category="linear", symbol="DOGEUSDT", side="Buy",
                            orderType="Market", qty="1")
    assert sym.value.status_code == 10001


def test_insufficient_balance_is_110007(sim):
    sim.post("/sim/reset", {"initial_balance": "100"})
    session = sim.session()
    with pytest.raises(InvalidRequestError) as info:  # ~4,600 USDT notional at 10x = 460 IM
        session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                            orderType="Market", qty="0.100")
    assert info.value.status_code == 110007
    assert sim.get("/sim/orders")["count"] == 0


def test_rate_limit_10006_carries_the_reset_header(sim):
    sim.post("/sim/faults", {"rate_limit_per_s": 1})
    no_retry = sim.session(retry_codes={10002})  # 10006 raised, not slept on
    seen = None
    for _ in range(6):
        sent_ms = time.time() * 1000
        try:
            no_retry.get_positions(category="linear", symbol="BTCUSDT")
        except InvalidRequestError as e:
            seen, answered_ms = e, time.time() * 1000
            break
    assert seen is not None and seen.status_code == 10006
    headers = seen.resp_headers
    reset_ms = int(headers["X-Bapi-Limit-Reset-Timestamp"])
    assert headers["X-Bapi-Limit"] == "1" and headers["X-Bapi-Limit-Status"] == "0"
    assert sent_ms < reset_ms <= answered_ms + 1000  # the end of the current 1 s window
    # pybit's default retry path sleeps until the reset and, with max_retries=1, gives up
    sim.post("/sim/faults", {"rate_limit_per_s": 1000, "rate_limit_prob": 1.0})
    started = time.monotonic()
    with pytest.raises(FailedRequestError):
        sim.session().get_wallet_balance(accountType="UNIFIED")
    assert time.monotonic() - started < 5  # slept until the reset (<= 1 s), then gave up


def test_5xx_fault_places_nothing(sim, session):
    sim.post("/sim/faults", {"http_5xx_prob": 1.0, "paths": ["/v5/order/create"]})
    with pytest.raises(FailedRequestError) as info:
        session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                            orderType="Market", qty="0.001", orderLinkId="five")
    assert info.value.status_code == 503
    assert sim.get("/sim/orders")["count"] == 0
    assert sim.get("/sim/faults")["injected"]["http_5xx"] == 1


def test_timeout_fault_places_the_order_and_the_retry_is_recognised(sim):
    sim.post("/sim/faults", {"timeout_prob": 1.0, "timeout_s": 1.5,
                             "paths": ["/v5/order/create"]})
    impatient = sim.session(timeout=0.4)
    args = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
            "qty": "0.002", "orderLinkId": "intent-timeout"}
    with pytest.raises(requests.exceptions.ReadTimeout):
        impatient.place_order(**args)
    sim.post("/sim/faults", {"timeout_prob": 0.0})
    with pytest.raises(InvalidRequestError) as dup:  # the retry: same orderLinkId
        impatient.place_order(**args)
    assert dup.value.status_code == 110072
    (order,) = impatient.get_open_orders(category="linear", symbol="BTCUSDT",
                                         orderLinkId="intent-timeout")["result"]["list"]
    assert order["orderStatus"] == "Filled" and sim.get("/sim/orders")["count"] == 1


def test_kline_rest_is_newest_first_and_stops_at_the_clock(sim, session):
    sim.advance(3)
    r = session.get_kline(category="linear", symbol="SOLUSDT", interval="240", limit=10)
    forming, *rows = r["result"]["list"]          # first: the bar opening at the venue's time
    assert int(forming[0]) == FIRST_MS + 4 * H4 and forming[5] == "0"
    expected = load_bars("SOLUSDT", FIRST_MS, FIRST_MS + 3 * H4)[::-1]
    assert [row[:6] for row in rows] == [[str(b.open_time_ms), b.open, b.high, b.low, b.close,
                                          b.volume] for b in expected]
    with pytest.raises(InvalidRequestError) as info:
        session.get_kline(category="linear", symbol="SOLUSDT", interval="60")
    assert info.value.status_code == 10001
    tickers = session.get_tickers(category="linear", symbol="SOLUSDT")["result"]["list"]
    assert tickers[0]["lastPrice"] == expected[0].close
    info_list = session.get_instruments_info(category="linear")["result"]["list"]
    assert {i["symbol"]: i["lotSizeFilter"]["qtyStep"] for i in info_list} == {
        "BTCUSDT": "0.001", "ETHUSDT": "0.01", "SOLUSDT": "0.1"}


def test_dvol_has_no_look_ahead(sim):
    day = 86_400_000
    start = 1668384000000  # 2022-11-14 00:00, clock = its first 4h bar
    sim.post("/sim/reset", {"start_ms": start})
    r = sim.get("/api/v2/public/get_volatility_index_data", currency="BTC",
                start_timestamp=0, end_timestamp=start + 10 * day, resolution="1D")
    days = [row[0] for row in r["result"]["data"]]
    assert days[-1] == start - day and days[0] == 1667692800000
    assert all(len(row) == 5 for row in r["result"]["data"])


def test_service_endpoints(sim, session):
    assert httpx.get(sim.url + "/readyz").json()["ready"] is True
    status = sim.get("/status")
    assert status["service"] == "exchange-sim" and "itest" not in str(status)
    session.get_positions(category="linear", symbol="BTCUSDT")
    metrics = httpx.get(sim.url + "/metrics").text
    assert 'tm_exchange_sim_requests_total{path="/v5/position/list",ret_code="0"}' in metrics
    promtool = shutil.which("promtool")
    if promtool:
        lint = subprocess.run([promtool, "check", "metrics"], input=metrics, text=True,
                              capture_output=True, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr
