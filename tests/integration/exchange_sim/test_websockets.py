"""The sim's WebSockets over real sockets: public kline driven by the clock, private auth and
order/execution/position/wallet pushes, ping/pong, dropped connections; and pybit's client."""

from __future__ import annotations

import asyncio
import json
import queue
import time
from decimal import Decimal as D

import httpx
import pytest
import websockets
from tm_common.history import load_bars
from tm_exchange_sim.signing import ws_signature

FIRST_MS = 1640995200000
H4 = 4 * 3600 * 1000


async def recv_json(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def advance(sim, steps: int = 1) -> dict:
    async with httpx.AsyncClient() as client:
        r = await client.post(sim.url + "/sim/clock", json={"steps": steps})
        r.raise_for_status()
        return r.json()


async def test_kline_topic_pushes_each_confirmed_bar_as_in_the_csv(sim):
    async with websockets.connect(sim.ws_url + "/v5/public/linear") as ws:
        await ws.send(json.dumps({"op": "subscribe", "req_id": "r1",
                                  "args": ["kline.240.BTCUSDT"]}))
        ack = await recv_json(ws)
        assert ack["success"] is True and ack["op"] == "subscribe" and ack["req_id"] == "r1"
        await ws.send(json.dumps({"op": "ping", "req_id": "p1"}))
        pong = await recv_json(ws)                # Bybit's linear public pong
        assert pong == {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"],
                        "req_id": "p1", "op": "ping"}

        await advance(sim)
        await advance(sim)
        received = [await recv_json(ws) for _ in range(2 * 5)]   # 3 partial, 1 confirmed, 1 open
    pushes = [m for m in received if m["data"][0]["confirm"]]
    expected = load_bars("BTCUSDT", FIRST_MS + H4, FIRST_MS + 2 * H4)
    forming = [m for m in received if not m["data"][0]["confirm"]]
    assert [m["ts"] for m in forming[:4]] == [FIRST_MS + H4 + k * H4 // 4 for k in (1, 2, 3, 4)]
    assert forming[3]["data"][0]["start"] == FIRST_MS + 2 * H4         # the next bar opening
    for msg in forming[:3]:                                            # inside the final bar
        k, final = msg["data"][0], expected[0]
        assert D(final.low) <= D(k["low"]) <= D(k["close"]) <= D(k["high"]) <= D(final.high)
        assert k["open"] == final.open and D(k["volume"]) < D(final.volume)
    for msg, bar in zip(pushes, expected, strict=True):
        assert msg["topic"] == "kline.240.BTCUSDT" and msg["type"] == "snapshot"
        (k,) = msg["data"]
        assert k["confirm"] is True and k["interval"] == "240"
        assert (k["start"], k["end"]) == (bar.open_time_ms, bar.open_time_ms + H4 - 1)
        assert [k["open"], k["high"], k["low"], k["close"], k["volume"]] == \
            [bar.open, bar.high, bar.low, bar.close, bar.volume]
        assert msg["ts"] == bar.open_time_ms + H4


async def test_unknown_topic_is_refused(sim):
    async with websockets.connect(sim.ws_url + "/v5/public/linear") as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": ["kline.60.BTCUSDT"]}))
        reply = await recv_json(ws)
        assert reply["success"] is False and "kline.60.BTCUSDT" in reply["ret_msg"]


async def test_private_auth_with_a_bad_signature_is_refused(sim, session):
    expires = int(time.time() * 1000) + 5000
    async with websockets.connect(sim.ws_url + "/v5/private") as ws:
        await ws.send(json.dumps({"op": "auth", "args": [
            session.api_key, expires, ws_signature("wrong-secret", expires)]}))
        reply = await recv_json(ws)
        assert reply["op"] == "auth" and reply["success"] is False
        with pytest.raises(websockets.ConnectionClosed):
            await recv_json(ws)


async def test_private_topics_after_auth(sim, session):
    expires = int(time.time() * 1000) + 5000
    async with websockets.connect(sim.ws_url + "/v5/private") as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": ["order"]}))
        assert (await recv_json(ws))["success"] is False  # not authenticated yet
        await ws.send(json.dumps({"op": "auth", "args": [
            session.api_key, expires, ws_signature(session.api_secret, expires)]}))
        assert (await recv_json(ws))["success"] is True
        await ws.send(json.dumps({"op": "subscribe", "req_id": "p",
                                  "args": ["order", "execution", "position", "wallet"]}))
        assert (await recv_json(ws))["success"] is True

        placed = await asyncio.to_thread(
            session.place_order, category="linear", symbol="ETHUSDT", side="Sell",
            orderType="Market", qty="0.50", orderLinkId="ws-1")
        pushes, times = {}, set()
        while len(pushes) < 4:
            msg = await recv_json(ws)
            pushes[msg["topic"]] = msg["data"][0]
            times.add(msg["creationTime"])
        await ws.send(json.dumps({"op": "ping", "req_id": "hb"}))
        pong = await recv_json(ws)                # Bybit's private pong: the server time
    order_id = placed["result"]["orderId"]
    venue_now = FIRST_MS + H4                     # the fixture's venue: the first bar's close
    assert times == {venue_now} and pong == {"req_id": "hb", "op": "pong",
                                             "args": [str(venue_now)],
                                             "conn_id": pong["conn_id"]}
    # Bybit's stream names: entryPrice (not avgPrice), breakEvenPrice
    fill = D(pushes["execution"]["execPrice"])
    assert D(pushes["position"]["entryPrice"]) == fill and "avgPrice" not in pushes["position"]
    assert D(pushes["position"]["breakEvenPrice"]) < fill    # a short: fees pull it down
    assert pushes["order"]["orderId"] == order_id and pushes["order"]["orderStatus"] == "Filled"
    assert pushes["order"]["category"] == "linear"
    assert pushes["execution"]["orderLinkId"] == "ws-1" and pushes["execution"]["execQty"] == \
        "0.50"
    assert pushes["position"]["side"] == "Sell" and pushes["position"]["size"] == "0.50"
    assert pushes["wallet"]["accountType"] == "UNIFIED"


async def test_drop_ws_now_closes_connections(sim):
    async with websockets.connect(sim.ws_url + "/v5/public/linear") as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": ["kline.240.ETHUSDT"]}))
        await recv_json(ws)
        async with httpx.AsyncClient() as client:
            r = await client.post(sim.url + "/sim/faults", json={"drop_ws_now": True})
        assert r.json()["dropped"] >= 1
        with pytest.raises(websockets.ConnectionClosed):
            await recv_json(ws)


def test_pybit_websocket_client_receives_klines(sim, monkeypatch):
    import pybit.unified_trading as ut

    monkeypatch.setattr(ut, "PUBLIC_WSS", sim.ws_url + "/v5/public/{CHANNEL_TYPE}")
    got: queue.Queue = queue.Queue()

    def subscribed(within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while not sim.get("/status")["ws_topics"].get("kline.240.SOLUSDT"):  # it has landed
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # pybit connects and subscribes in its own thread; on a loaded machine that thread has been
    # seen to stall for over a minute once in a full CI run. A second client gets one more try;
    # a venue that never takes the subscription still fails.
    clients = []
    try:
        for _ in range(2):
            ws = ut.WebSocket(channel_type="linear", testnet=False, ping_interval=5, ping_timeout=4)
            clients.append(ws)
            ws.kline_stream(interval=240, symbol="SOLUSDT", callback=got.put)
            if subscribed(45):
                break
        else:
            raise AssertionError("pybit never subscribed (two clients, 45 s each)")
        sim.advance(1)
        msg = got.get(timeout=5)
        while not msg["data"][0]["confirm"]:         # the bar's formation first
            msg = got.get(timeout=5)
    finally:
        for ws in clients:
            ws.exit()
    (bar,) = load_bars("SOLUSDT", FIRST_MS + H4, FIRST_MS + H4)
    assert msg["topic"] == "kline.240.SOLUSDT"
    assert msg["data"][0]["close"] == bar.close and msg["data"][0]["confirm"] is True
