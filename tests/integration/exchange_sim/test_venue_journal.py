"""A paper venue killed with SIGKILL and started again on its journal (``TM_SIM_JOURNAL_FILE``)
is the same account over HTTP: positions, wallet, orders and executions as pybit reads them, and
an order sent again with the same ``orderLinkId`` is refused as a duplicate, not placed twice."""

from __future__ import annotations

import httpx
import pytest
from pybit.exceptions import InvalidRequestError
from tm_common.testing.redis import free_port
from tm_common.testing.sim import run_sim

T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC
H4 = 4 * 3600 * 1000
SYMS = ("BTCUSDT", "ETHUSDT")


def _bars(n: int) -> list[dict]:
    return [{"symbol": s, "open_time_ms": T0 + i * H4, "open": p, "high": p, "low": p,
             "close": p, "volume": "10"}
            for i in range(n) for s, p in (("BTCUSDT", str(94000 + 100 * i)),
                                           ("ETHUSDT", str(3300 + 10 * i)))]


def _account(sim) -> dict:
    http = sim.session()
    out: dict = {"wallet": http.get_wallet_balance(accountType="UNIFIED")["result"]["list"]}
    for s in SYMS:
        out[s] = {"positions": http.get_positions(category="linear", symbol=s)["result"]["list"],
                  "executions": http.get_executions(category="linear",
                                                    symbol=s)["result"]["list"],
                  "history": http.get_order_history(category="linear", symbol=s)["result"]["list"],
                  "open": http.get_open_orders(category="linear", symbol=s)["result"]["list"]}
    return out


def test_a_killed_paper_venue_comes_back_as_the_same_account(tmp_path):
    journal = tmp_path / "venue.jsonl"
    port = free_port()
    env = {"TM_SIM_FEED": "live", "TM_SIM_SYMBOLS": '["BTCUSDT", "ETHUSDT"]',
           "TM_SIM_JOURNAL_FILE": str(journal)}
    with run_sim(tmp_path, port=port, **env) as sim:
        httpx.post(f"{sim.url}/sim/bars", json={"bars": _bars(2)}, timeout=5).raise_for_status()
        http = sim.session()
        http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                         qty="0.05", orderLinkId="b1")
        http.place_order(category="linear", symbol="ETHUSDT", side="Sell", orderType="Limit",
                         qty="1", price="3500", orderLinkId="e1")         # rests
        httpx.post(f"{sim.url}/sim/bars", json={"bars": _bars(3)}, timeout=5).raise_for_status()
        before = _account(sim)
        clock = sim.get("/sim/clock")
        assert sim.proc is not None
        sim.proc.kill()                                  # SIGKILL: nothing saved on the way out
        sim.proc.wait(timeout=10)
    with run_sim(tmp_path, port=port, **env) as again:
        assert _account(again) == before
        assert again.get("/sim/clock") == clock
        with pytest.raises(InvalidRequestError, match="110072|duplicate"):
            again.session().place_order(category="linear", symbol="BTCUSDT", side="Buy",
                                        orderType="Market", qty="0.05", orderLinkId="b1")
        # and the account goes on: the resting order fills when a bar trades through it
        httpx.post(f"{again.url}/sim/bars", json={"bars": [
            {"symbol": "ETHUSDT", "open_time_ms": T0 + 3 * H4, "open": "3400", "high": "3550",
             "low": "3390", "close": "3450", "volume": "10"}]}, timeout=5).raise_for_status()
        assert _account(again)["ETHUSDT"]["open"] == []
    assert before["BTCUSDT"]["positions"][0]["size"] == "0.05"
    assert before["ETHUSDT"]["open"][0]["orderLinkId"] == "e1"
