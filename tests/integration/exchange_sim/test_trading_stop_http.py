"""A position's stop loss on the sim over real HTTP, through pybit's ``set_trading_stop``
(``POST /v5/position/trading-stop``): shown by ``get_positions``, triggered by the replay clock
closing a bar that reaches it, the position closed by the venue's own order (``StopLoss``,
``CreateByStopLoss``) at the stop with the sim's slippage and taker fee; and a journaled paper
venue killed and started again keeps the stop it had."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from pybit.exceptions import InvalidRequestError
from tm_common.history import load_bars
from tm_common.testing.redis import free_port
from tm_common.testing.sim import run_sim
from tm_exchange_sim.matching import SlippageModel

FIRST_MS = 1640995200000
H4 = 4 * 3600 * 1000
SLIPPAGE = SlippageModel(Decimal(2))          # run_sim's TM_SIM_SLIPPAGE_BPS
TAKER = Decimal("0.00055")


def tick_size(session, symbol: str) -> Decimal:
    (info,) = session.get_instruments_info(category="linear", symbol=symbol)["result"]["list"]
    return Decimal(info["priceFilter"]["tickSize"])


def test_a_stop_loss_closes_the_position_when_the_clock_reaches_it(sim, session):
    """The stop is put between the next bar's extreme and the last close, on the side the next
    bar moves against the position: that bar triggers it."""
    now, nxt = load_bars("BTCUSDT", FIRST_MS, FIRST_MS + H4)
    close, tick = Decimal(now.close), tick_size(session, "BTCUSDT")
    long = Decimal(nxt.low) < close
    side, extreme = ("Buy", Decimal(nxt.low)) if long else ("Sell", Decimal(nxt.high))
    stop = ((extreme + close) / 2 / tick).to_integral_value() * tick
    assert (extreme <= stop < close) if long else (close < stop <= extreme)
    session.place_order(category="linear", symbol="BTCUSDT", side=side, orderType="Market",
                        qty="0.010", orderLinkId="sl-entry")
    with pytest.raises(InvalidRequestError) as partial:
        session.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Partial",
                                 positionIdx=0, stopLoss=str(stop))
    assert partial.value.status_code == 10001 and "Full only" in partial.value.message

    r = session.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Full",
                                 positionIdx=0, stopLoss=str(stop), slTriggerBy="LastPrice")
    assert (r["retCode"], r["result"]) == (0, {})
    (pos,) = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (Decimal(pos["stopLoss"]), pos["tpslMode"]) == (stop, "Full")
    with pytest.raises(InvalidRequestError) as same:
        session.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Full",
                                 positionIdx=0, stopLoss=str(stop))
    assert same.value.status_code == 34040

    sim.advance(1)
    (pos,) = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (Decimal(pos["size"]), pos["stopLoss"]) == (0, "")
    close_side = "Sell" if long else "Buy"
    open_ = Decimal(nxt.open)
    gapped = open_ <= stop if long else open_ >= stop
    price = SLIPPAGE.fill_price(close_side, open_ if gapped else stop, tick)
    (ex,) = session.get_executions(category="linear", symbol="BTCUSDT",
                                   execType="Trade")["result"]["list"][:1]
    assert (ex["side"], ex["stopOrderType"], ex["createType"], ex["orderLinkId"]) == (
        close_side, "StopLoss", "CreateByStopLoss", "")
    assert (Decimal(ex["execQty"]), Decimal(ex["execPrice"])) == (Decimal("0.010"), price)
    assert Decimal(ex["execFee"]) == Decimal("0.010") * price * TAKER
    assert ex["execTime"] == str(FIRST_MS + 2 * H4)
    history = session.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]
    (order,) = [o for o in history if o["orderId"] == ex["orderId"]]
    assert (order["orderStatus"], order["orderType"], order["reduceOnly"],
            order["closeOnTrigger"], order["stopOrderType"], order["createType"],
            Decimal(order["triggerPrice"])) == (
        "Filled", "Market", True, True, "StopLoss", "CreateByStopLoss", stop)
    (entry,) = [o for o in history if o["orderLinkId"] == "sl-entry"]
    assert (entry["stopOrderType"], entry["createType"]) == ("", "CreateByUser")
    with pytest.raises(InvalidRequestError, match="zero position"):
        session.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Full",
                                 positionIdx=0, stopLoss=str(stop))


T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC


def _bar(i: int, close: str, low: str | None = None) -> dict:
    return {"symbol": "BTCUSDT", "open_time_ms": T0 + i * H4, "open": close, "high": close,
            "low": low or close, "close": close, "volume": "10"}


def test_a_killed_journaled_venue_keeps_the_stop(tmp_path):
    port = free_port()
    env = {"TM_SIM_FEED": "live", "TM_SIM_SYMBOLS": '["BTCUSDT"]',
           "TM_SIM_JOURNAL_FILE": str(tmp_path / "venue.jsonl")}
    with run_sim(tmp_path, port=port, **env) as sim:
        httpx.post(f"{sim.url}/sim/bars", json={"bars": [_bar(0, "94000")]},
                   timeout=5).raise_for_status()
        http = sim.session()
        http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                         qty="0.05", orderLinkId="b1")
        http.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Full",
                              positionIdx=0, stopLoss="90000")
        assert sim.proc is not None
        sim.proc.kill()                                  # SIGKILL: nothing saved on the way out
        sim.proc.wait(timeout=10)
    with run_sim(tmp_path, port=port, **env) as again:
        http = again.session()
        (pos,) = http.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
        assert (pos["size"], pos["stopLoss"]) == ("0.05", "90000")
        httpx.post(f"{again.url}/sim/bars", json={"bars": [_bar(1, "91000", low="89000")]},
                   timeout=5).raise_for_status()
        (pos,) = http.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
        assert (Decimal(pos["size"]), pos["stopLoss"]) == (0, "")
        (ex,) = http.get_executions(category="linear", symbol="BTCUSDT",
                                    execType="Trade")["result"]["list"][:1]
        assert (ex["stopOrderType"], Decimal(ex["execPrice"])) == (
            "StopLoss", SLIPPAGE.fill_price("Sell", Decimal(90000), Decimal("0.1")))
        metrics = httpx.get(f"{again.url}/metrics", timeout=5).text
        assert 'tm_exchange_sim_stop_losses_triggered_total{symbol="BTCUSDT"} 1.0' in metrics
