"""Fills that arrive after an intent was reported: the private WebSocket and the poller.

Both only *observe*: they hand fills and order states of the handler's open orders to the
handler through ``exec.venue``; the handler publishes each ``exec_id`` once (it keeps the ones it
published in its committed state). The poller is the fallback for a WebSocket that is down or
missed a message; a fill both see is one observation twice, deduplicated by the handler.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable

import structlog
import websockets
from tm_common.errors import TransientError
from tm_common.events import OrderReported
from tm_common.ws_watch import (
    ReadDeadlineExceeded,
    SubscribeRefused,
    jittered,
    recv_within,
    refused,
)

from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueError, scrub
from tm_executor.domain.orders import BadVenueRecord, VenueExecution, fills_complete, trade_fills
from tm_executor.handler_state import OpenOrder, fill_event
from tm_executor.metrics import ExecutorMetrics
from tm_executor.repository import ExecutorRepository
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor.fills")
OpenOrders = Callable[[], list[OpenOrder]]


class WsAuthFailed(Exception):
    pass


def ws_auth_args(api_key: str, api_secret: str, expires_ms: int) -> list:
    """Bybit's private WebSocket ``auth`` op arguments: key, expiry, HMAC of GET/realtime."""
    sig = hmac.new(api_secret.encode(), f"GET/realtime{expires_ms}".encode(),
                   hashlib.sha256).hexdigest()
    return [api_key, expires_ms, sig]


AUTH_EXPIRY_MS = 10_000
TOPICS = ("execution",)


class PrivateWsSource:
    """Subscribes to ``execution`` on the private WebSocket, watched as ingest's public socket
    is (:mod:`tm_common.ws_watch`):

    - the ``auth`` op's ``expires`` is on the venue's clock (``now_ms``: the executor's
      measured offset, :meth:`VenueClient.signing_ms`), so a host clock behind the venue's
      still authenticates;
    - the ``auth`` and ``subscribe`` answers must say ``success: true`` within the read
      deadline (a refusal: :class:`WsAuthFailed`, :class:`SubscribeRefused`; reconnect);
    - a ping every ``ws_ping_s``; nothing at all (no message, no pong) for
      ``ws_dead_after_pings`` x ``ws_ping_s``: the connection is half-open, aborted, replaced;
    - reconnects wait a jittered backoff, doubling while connections fail before they
      subscribed, reset after a connection that did.
    """

    def __init__(self, settings: ExecutorSettings, repo: ExecutorRepository,
                 open_orders: OpenOrders, metrics: ExecutorMetrics | None = None, *,
                 backoff_s: tuple[float, float] = (0.5, 30.0),
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 rng: random.Random | None = None, topics: tuple[str, ...] = TOPICS,
                 gate: Callable[[], bool] = lambda: True) -> None:
        self.s, self.repo, self.open_orders, self.metrics = settings, repo, open_orders, metrics
        self.url = settings.bybit_private_ws_url
        self.backoff_s = backoff_s
        self.now_ms = now_ms
        self.rng = rng or random.Random()
        self.topics = topics
        self.gate = gate          # connect only once true (the venue's clock is measured)
        self.read_deadline_s = settings.ws_dead_after_pings * settings.ws_ping_s
        self.connected = False
        self.subscribed = False
        self.connects = self.messages = self.forwarded = self.bad = self.pongs = 0
        self.errors: dict[str, int] = {}
        self.retry_waits_s: list[float] = []
        self.last_error: str | None = None
        self._secrets = [s.get_secret_value() for s in (settings.bybit_api_key,
                                                         settings.bybit_api_secret) if s]

    async def run(self, stop: asyncio.Event) -> None:
        if not self.s.ws_enabled or len(self._secrets) < 2:
            self.last_error = "disabled" if not self.s.ws_enabled else "no API credentials"
            return
        while not stop.is_set() and not self.gate():
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.2)
            except TimeoutError:
                pass
        backoff = self.backoff_s[0]
        while not stop.is_set():
            try:
                await self._session(stop)
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException,
                    WsAuthFailed, TransientError, ValueError) as e:
                self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
                self.last_error = scrub(f"{type(e).__name__}: {e}", self._secrets)
                log.warning("executor.ws_disconnected", error=self.last_error,
                            retry_in_s=round(backoff, 2))
            finally:
                if self.subscribed:           # a working connection dropped: a new incident
                    backoff = self.backoff_s[0]
                self.subscribed = False
                self._set_connected(False)
            if stop.is_set():
                break
            wait = jittered(backoff, self.rng)
            self.retry_waits_s = [*self.retry_waits_s[-99:], wait]
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.backoff_s[1])

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        if self.metrics is not None:
            self.metrics.ws_connected.set(1 if up else 0)

    async def _session(self, stop: asyncio.Event) -> None:
        async with websockets.connect(self.url, ping_interval=None, open_timeout=10,
                                      close_timeout=2, max_size=2**22) as ws:
            # run() only opens a session with both credentials set
            key, secret = (s.get_secret_value() for s in (self.s.bybit_api_key,
                                                          self.s.bybit_api_secret) if s is not None)
            expires = self.now_ms() + AUTH_EXPIRY_MS       # the venue's clock, not the host's
            await ws.send(json.dumps({"op": "auth", "args": ws_auth_args(key, secret, expires)}))
            stopper = asyncio.ensure_future(stop.wait())
            pinger: asyncio.Task[None] | None = None
            what = f"{self.s.ws_dead_after_pings:g} ping intervals"
            try:
                await self._await_ack(ws, stopper, "auth", what)
                if stopper.done():
                    return
                await ws.send(json.dumps({"op": "subscribe", "args": list(self.topics)}))
                self.connects += 1
                self._set_connected(True)
                pinger = asyncio.create_task(self._ping(ws))
                await self._await_ack(ws, stopper, "subscribe", what)
                if stopper.done():
                    return
                self.subscribed = True
                log.info("executor.ws_connected", connects=self.connects)
                while True:
                    raw = await recv_within(ws, stopper, self.read_deadline_s, what)
                    if raw is None:
                        return
                    await self._frame(raw)
            finally:
                stopper.cancel()
                if pinger is not None:
                    pinger.cancel()

    async def _await_ack(self, ws, stopper: asyncio.Future, op: str, what: str) -> None:
        """Frames until the venue answers ``op`` (others are handled as usual); a refusal
        raises, and so does no answer within the read deadline."""
        by = time.monotonic() + self.read_deadline_s
        while True:
            left = by - time.monotonic()
            if left <= 0:
                ws.transport.abort()
                raise ReadDeadlineExceeded(f"no {op} answer within {self.read_deadline_s:.1f} s")
            raw = await recv_within(ws, stopper, left, what)
            if raw is None:
                return
            msg = _json(raw)
            if isinstance(msg, dict) and msg.get("op") == op:
                why = refused(msg, op)
                if why is None:
                    return
                if op == "auth":
                    raise WsAuthFailed(why)
                log.error("executor.ws_subscribe_refused", ret_msg=why)
                raise SubscribeRefused(f"subscribe refused: {why}")
            await self._frame(raw)

    async def _frame(self, raw: str | bytes) -> None:
        msg = _json(raw)
        if isinstance(msg, dict) and msg.get("op") in ("pong", "ping"):
            self.pongs += 1
            return
        await self.on_message(raw)

    async def _ping(self, ws) -> None:
        while True:
            await asyncio.sleep(self.s.ws_ping_s)     # Bybit drops silent connections
            await ws.send(json.dumps({"op": "ping"}))

    async def on_message(self, raw: str | bytes) -> int:
        """Forward the trade executions of open orders; returns how many were forwarded."""
        try:
            msg = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.bad += 1
            return 0
        if not isinstance(msg, dict) or msg.get("topic") != "execution":
            return 0
        self.messages += 1
        data = msg.get("data")
        if not isinstance(data, list):
            self.bad += 1
            return 0
        open_by_link = {o.link_id: o for o in self.open_orders()}
        n = 0
        for item in data:
            try:
                e = VenueExecution.from_bybit(item) if isinstance(item, dict) else None
            except BadVenueRecord:
                e = None
            if e is None:
                self.bad += 1
                continue
            o = open_by_link.get(e.order_link_id)
            if not e.is_trade or o is None or e.exec_id in o.seen:
                continue
            await self.repo.observe(fill_event(o.intent_id, e), key=f"exec:{e.exec_id}",
                                    correlation_id=o.correlation_id, ts_event_ns=o.ts_event_ns)
            n += 1
        self.forwarded += n
        return n

    def status(self) -> dict:
        return {"connected": self.connected, "subscribed": self.subscribed,
                "connects": self.connects, "messages": self.messages,
                "forwarded": self.forwarded, "bad": self.bad, "pongs": self.pongs,
                "errors": dict(sorted(self.errors.items())), "last_error": self.last_error}


def _json(raw: str | bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


class FillPoller:
    """Every ``fill_poll_interval_s``: each open order's executions and state from REST."""

    def __init__(self, venue: VenueClient, repo: ExecutorRepository, open_orders: OpenOrders,
                 settings: ExecutorSettings) -> None:
        self.venue, self.repo, self.open_orders, self.s = venue, repo, open_orders, settings
        self.polls = self.forwarded = 0
        self.last_error: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll_once()
                self.last_error = None
            except VenueError as e:
                self.last_error = f"{e.endpoint}: {e.code_label}: {e.message}"
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.s.fill_poll_interval_s)
            except TimeoutError:
                pass

    async def poll_once(self) -> int:
        """Forward unseen fills, then the order's state once it is terminal and complete."""
        self.polls += 1
        n = 0
        for o in self.open_orders():
            fills = trade_fills(await self.venue.get_executions(o.instrument, o.order_id),
                                o.order_id)
            for f in fills:
                if f.exec_id not in o.seen:
                    await self.repo.observe(fill_event(o.intent_id, f), key=f"exec:{f.exec_id}",
                                            correlation_id=o.correlation_id,
                                            ts_event_ns=o.ts_event_ns)
                    n += 1
            order = await self.venue.get_order(o.instrument, order_id=o.order_id)
            if order is None or order.status == o.status:
                continue
            if order.terminal and not fills_complete(order, fills):
                continue                      # fills still to come: next poll
            await self.repo.observe(OrderReported(
                intent_id=o.intent_id, order_link_id=o.link_id, order_id=o.order_id,
                instrument=o.instrument, status=order.status),
                key=f"order:{o.order_id}:{order.status}:{order.cum_exec_qty}",
                correlation_id=o.correlation_id, ts_event_ns=o.ts_event_ns)
            n += 1
        self.forwarded += n
        return n

    def status(self) -> dict:
        return {"polls": self.polls, "forwarded": self.forwarded, "last_error": self.last_error}
