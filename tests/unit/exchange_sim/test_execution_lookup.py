"""``/v5/execution/list`` by order: answered from the engine's per-order index, and exactly what a
scan of every execution with the same filters gives (order, pages, funding rows)."""

from __future__ import annotations

from tm_app.venue import InProcessBybit
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.serialise import execution_dict

START_MS = 1_700_006_400_000          # a funding time (08:00 UTC), so funding rows appear too
H4 = 4 * 3600 * 1000


def _scan(venue: InProcessBybit, **want: str) -> list[dict]:
    rows = [execution_dict(e) for e in venue.state.engine.executions
            if all(execution_dict(e)[k] == v for k, v in want.items())]
    return rows[::-1]


def test_execution_lookup_by_order_equals_a_scan_of_every_execution():
    venue = InProcessBybit.from_settings(ExchangeSimSettings(
        sim_symbols=["BTCUSDT", "ETHUSDT"], sim_start_ms=START_MS))
    placed = []
    for i in range(12):
        venue.advance(START_MS + (i + 1) * H4)
        for sym in ("BTCUSDT", "ETHUSDT"):
            link = f"{sym}-{i}"
            r = venue.place_order(category="linear", symbol=sym, side="Buy" if i % 3 else "Sell",
                                  orderType="Market", qty="0.01" if sym == "BTCUSDT" else "0.1",
                                  orderLinkId=link)
            placed.append((sym, link, r["result"]["orderId"]))
    assert len(venue.state.engine.executions) > len(placed)     # trades and funding rows
    for sym, link, order_id in placed:
        by_link = venue.get_executions(category="linear", symbol=sym, orderLinkId=link)
        by_id = venue.get_executions(category="linear", symbol=sym, orderId=order_id)
        assert by_link["result"]["list"] == _scan(venue, orderLinkId=link)
        assert by_id["result"]["list"] == _scan(venue, orderId=order_id)
        assert by_id["result"]["list"] and by_id["result"]["list"][0]["orderLinkId"] == link
    for sym in ("BTCUSDT", "ETHUSDT"):
        for kind in ("Trade", "Funding"):
            got = venue.get_executions(category="linear", symbol=sym, execType=kind, limit=100)
            assert got["result"]["list"] == _scan(venue, symbol=sym, execType=kind)[:100]
            since = int(got["result"]["list"][-1]["execTime"]) + 1 if got["result"]["list"] else 0
            later = venue.get_executions(category="linear", symbol=sym, execType=kind,
                                         startTime=since, limit=100)["result"]["list"]
            assert later == [r for r in _scan(venue, symbol=sym, execType=kind)
                             if int(r["execTime"]) >= since][:100]
    assert _scan(venue, symbol="BTCUSDT", execType="Funding")
    # another symbol's order id finds nothing; no order filter still lists everything, newest first
    sym, link, order_id = placed[0]
    assert venue.get_executions(category="linear", symbol="ETHUSDT",
                                orderId=order_id)["result"]["list"] == []
    every = venue.get_executions(category="linear", symbol="BTCUSDT", limit=100)["result"]["list"]
    assert every == _scan(venue, symbol="BTCUSDT")[:100]
