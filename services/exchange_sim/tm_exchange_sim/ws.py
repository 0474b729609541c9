"""Bybit V5 WebSockets: public ``/v5/public/linear`` (``kline.240.<symbol>``, driven by the
replay clock: each closing bar's formation, :mod:`tm_exchange_sim.forming`) and private
``/v5/private`` (``auth`` op, then ``order``, ``execution``, ``position``, ``wallet``).

``{"op": "ping"}`` gets Bybit's pong of the channel: on the linear public channel
``{"success": true, "ret_msg": "pong", "conn_id", "req_id", "op": "ping"}``, on the private
channel ``{"req_id", "op": "pong", "args": ["<venue time ms>"], "conn_id"}``. Every time in a
push is the venue's time (:meth:`SimState.venue_ms`). Every engine event goes out through
:meth:`WsHub.publish_engine_events`, which also counts the stop losses triggered (a metric)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import cast

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from tm_common.instruments import CLOSED

from tm_exchange_sim.faults import FaultInjector
from tm_exchange_sim.forming import formation
from tm_exchange_sim.matching import Execution, Order, Position, VenueError
from tm_exchange_sim.matching.stops import STOP_LOSS
from tm_exchange_sim.metrics import SimMetrics
from tm_exchange_sim.serialise import (
    execution_dict,
    order_dict,
    wallet_entry,
    ws_kline,
    ws_position_dict,
)
from tm_exchange_sim.signing import verify_ws_auth
from tm_exchange_sim.state import SimState, Step

PRIVATE_TOPICS = ("order", "execution", "position", "wallet")
# What a send or close on a socket whose peer has gone raises (uvicorn's ClientDisconnected is
# an OSError; Starlette raises RuntimeError once the socket is closed).
GONE = (WebSocketDisconnect, RuntimeError, OSError)
POLICY_VIOLATION = 1008


class _Conn:
    def __init__(self, ws: WebSocket, conn_id: str, channel: str) -> None:
        self.ws = ws
        self.conn_id = conn_id
        self.channel = channel
        self.topics: set[str] = set()
        self.authed = False


class WsHub:
    def __init__(self, state: SimState, faults: FaultInjector, metrics: SimMetrics,
                 keys: Callable[[], dict[str, str]], wall_ms: Callable[[], int]) -> None:
        self.state = state
        self.faults = faults
        self.metrics = metrics
        self.keys = keys
        self.wall_ms = wall_ms
        self.conns: dict[str, _Conn] = {}
        self._ids = itertools.count(1)
        self._msg_ids = itertools.count(1)

    # ---- publishing ----------------------------------------------------------------------
    async def publish_steps(self, steps: list[Step]) -> None:
        state = self.state
        for step in steps:
            for symbol, bar in sorted(step.bars.items()):
                topic = f"kline.240.{symbol}"
                pushes = formation(bar, state.settings.sim_kline_substeps,
                                   state.instruments[symbol].tick_size,
                                   state.next_open(symbol, bar.open_time_ms))
                for ts, item, confirm in pushes:
                    msg = {"topic": topic, "data": [ws_kline(item, confirm=confirm, at_ms=ts)],
                           "ts": ts, "type": "snapshot"}
                    await self._send_topic("public", topic, msg)

    async def publish_engine_events(self) -> None:
        engine = self.state.engine
        events = engine.pop_events()
        if not events:
            return
        now = self.state.venue_ms(self.wall_ms())
        wallet_due = False
        for topic, record in events:
            if topic == "wallet":
                wallet_due = True
                continue
            if topic == "order":
                data = {**order_dict(cast(Order, record)), "category": "linear"}
            elif topic == "execution":
                ex = cast(Execution, record)
                if ex.stop_order_type == STOP_LOSS:
                    self.metrics.stop_losses.labels(ex.symbol).inc()
                data = {**execution_dict(ex), "category": "linear"}
            else:
                pos = cast(Position, record)
                data = {**ws_position_dict(pos, engine.marks.get(pos.symbol),
                                           engine.fees.taker_rate), "category": "linear"}
            await self._send_topic("private", topic, {"id": self._msg_id(), "topic": topic,
                                                      "creationTime": now, "data": [data]})
        if wallet_due:
            await self._send_topic("private", "wallet", {
                "id": self._msg_id(), "topic": "wallet", "creationTime": now,
                "data": [wallet_entry(engine)]})

    async def close_all(self, code: int = 1012) -> int:
        conns = list(self.conns.values())
        for conn in conns:
            await self._drop(conn, code)
        return len(conns)

    def topic_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for conn in self.conns.values():
            for topic in conn.topics:
                counts[topic] = counts.get(topic, 0) + 1
        return dict(sorted(counts.items()))

    def _msg_id(self) -> str:
        return f"sim-{next(self._msg_ids)}"

    async def _send_topic(self, channel: str, topic: str, msg: dict) -> None:
        for conn in list(self.conns.values()):
            if conn.channel != channel or topic not in conn.topics:
                continue
            if channel == "private" and not conn.authed:
                continue
            if self.faults.config.ws_mute:
                continue
            if self.faults.drop_ws():
                self.metrics.faults.labels("ws_drop").inc()
                await self._drop(conn, 1011)
                continue
            try:
                await conn.ws.send_text(json.dumps(msg))
                self.metrics.ws_messages.labels(channel).inc()
            except GONE:  # the peer went away mid-send
                self._forget(conn)

    async def _drop(self, conn: _Conn, code: int) -> None:
        self._forget(conn)
        with contextlib.suppress(*GONE):
            await conn.ws.close(code=code)

    def _forget(self, conn: _Conn) -> None:
        if self.conns.pop(conn.conn_id, None) is not None:
            self.metrics.ws_connections.labels(conn.channel).dec()

    # ---- connections ---------------------------------------------------------------------
    async def serve(self, ws: WebSocket, channel: str) -> None:
        await ws.accept()
        conn = _Conn(ws, f"sim-conn-{next(self._ids)}", channel)
        self.conns[conn.conn_id] = conn
        self.metrics.ws_connections.labels(channel).inc()
        try:
            while True:
                text = await ws.receive_text()
                if not await self._on_message(conn, text):
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self._forget(conn)

    async def _reply(self, conn: _Conn, msg: dict) -> None:
        if self.faults.config.ws_mute:           # half-open: the peer hears nothing
            return
        await conn.ws.send_text(json.dumps(msg))

    async def _on_message(self, conn: _Conn, text: str) -> bool:
        try:
            msg = json.loads(text)
            op = msg.get("op")
        except (ValueError, AttributeError):
            await self._reply(conn, {"success": False, "ret_msg": "error: invalid JSON",
                                     "conn_id": conn.conn_id, "op": ""})
            return True
        req_id = msg.get("req_id", "")
        if op == "ping":
            if conn.channel == "private":
                pong = {"req_id": req_id, "op": "pong",
                        "args": [str(self.state.venue_ms(self.wall_ms()))],
                        "conn_id": conn.conn_id}
            else:
                pong = {"success": True, "ret_msg": "pong", "conn_id": conn.conn_id,
                        "req_id": req_id, "op": "ping"}
            await self._reply(conn, pong)
            return True
        if op == "auth":
            return await self._auth(conn, msg.get("args"), req_id)
        if op in ("subscribe", "unsubscribe"):
            await self._subscribe(conn, op, msg.get("args"), req_id)
            return True
        await self._reply(conn, {"success": False, "ret_msg": f"error: unknown op {op!r}",
                                 "conn_id": conn.conn_id, "req_id": req_id, "op": op or ""})
        return True

    async def _auth(self, conn: _Conn, args: object, req_id: str) -> bool:
        if conn.channel != "private":
            await self._reply(conn, {"success": False, "ret_msg": "auth on a public channel",
                                     "conn_id": conn.conn_id, "req_id": req_id, "op": "auth"})
            return True
        try:
            verify_ws_auth(args, self.keys(), self.wall_ms())
        except VenueError as e:
            await self._reply(conn, {"success": False, "ret_msg": e.ret_msg,
                                     "conn_id": conn.conn_id, "req_id": req_id, "op": "auth"})
            await asyncio.sleep(0)
            await self._drop(conn, POLICY_VIOLATION)
            return False
        conn.authed = True
        await self._reply(conn, {"success": True, "ret_msg": "", "conn_id": conn.conn_id,
                                 "req_id": req_id, "op": "auth"})
        return True

    async def _subscribe(self, conn: _Conn, op: str, args: object, req_id: str) -> None:
        topics = args if isinstance(args, list) else []
        bad = [t for t in topics if not self._topic_ok(conn, t)]
        ok = bool(topics) and not bad
        if conn.channel == "private" and not conn.authed:
            ok, reason = False, "Request not authorized"
        elif self.faults.config.ws_refuse_subscribe and op == "subscribe":
            ok, reason = False, "error:service overloaded (fault injection)"
        else:
            reason = "" if ok else f"error:handler not found,topic:{bad[0] if bad else ''}"
        if ok:
            if conn.channel == "private":
                topics = [t.split(".")[0] for t in topics]
            if op == "subscribe":
                conn.topics.update(topics)
            else:
                conn.topics.difference_update(topics)
        await self._reply(conn, {"success": ok, "ret_msg": reason, "conn_id": conn.conn_id,
                                 "req_id": req_id, "op": op})

    def _topic_ok(self, conn: _Conn, topic: object) -> bool:
        if not isinstance(topic, str):
            return False
        if conn.channel == "private":
            return topic in PRIVATE_TOPICS or topic.split(".")[0] in PRIVATE_TOPICS
        parts = topic.split(".")
        listed = self.state.engine.instruments.get(parts[-1])     # a delisted one: no handler
        return len(parts) == 3 and parts[0] == "kline" and parts[1] == "240" and \
            listed is not None and listed.status != CLOSED


def add_ws_routes(app: FastAPI, hub: WsHub) -> None:
    @app.websocket("/v5/public/linear")
    async def public_linear(ws: WebSocket) -> None:
        await hub.serve(ws, "public")

    @app.websocket("/v5/private")
    async def private(ws: WebSocket) -> None:
        await hub.serve(ws, "private")
