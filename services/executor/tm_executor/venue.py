"""The Bybit V5 client: pybit's ``unified_trading.HTTP`` behind an async, typed interface.

- One code path for mainnet, testnet and the exchange sim: ``session.endpoint`` is set to
  ``settings.bybit_rest_url`` after construction.
- pybit is synchronous (requests); every call runs in a worker thread (``asyncio.to_thread``),
  each thread with its own session (``requests.Session`` is not shared across threads).
- pybit's retries are off (``max_retries=1``, no retry codes, no ``force_retry``): the executor
  decides when to retry, and it looks an order up before any retry of ``place_order``.
- Answers are checked and errors translated into scrubbed :mod:`tm_executor.domain.errors`
  types by :mod:`tm_executor.venue_answers` (the response hook, ``translate``, result lists).
- An HTTP 403 is Bybit's IP ban: the client then sends nothing for ``ip_ban_silence_s``
  (default 600 s, Bybit asks for 10 minutes); every call in that time fails at once with a
  transient, unambiguous :class:`VenueTransient` ("silent after HTTP 403 ..."), ``/readyz``
  says so (:meth:`VenueClient.check_ip_ban`) and ``tm_executor_ip_ban_silence_seconds`` counts
  the seconds left. The end of the silence (wall-clock ms) is handed to ``on_ip_ban`` (the
  service keeps it in Redis) and :meth:`VenueClient.restore_ip_ban` resumes it after a restart.
- Signed timestamps follow the venue's clock: :meth:`VenueClient.sync_clock` measures the
  offset of ``/v5/market/time`` from the host clock (mid-point of the round trip), and the
  sessions sign with host time + offset (pybit builds ``X-BAPI-TIMESTAMP`` from
  ``time.time()`` with no offset option: :class:`_SyncedHTTP` overrides its header builder).
  An offset beyond ``max_clock_skew_ms`` is refused (:meth:`VenueClient.clock_problem`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import structlog
from tm_common.errors import NotReady
from tm_common.instruments import InstrumentSpec, find_listed

from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import (
    LEVERAGE_NOT_MODIFIED,
    POSITION_MODE_NOT_MODIFIED,
    STOP_NOT_MODIFIED,
    ErrorClass,
    VenueError,
    VenueFatal,
    VenueRejected,
    VenueTransient,
)
from tm_executor.domain.orders import VenueExecution, VenueOrder
from tm_executor.domain.reconcile import ExchangePosition
from tm_executor.metrics import ExecutorMetrics
from tm_executor.venue_answers import check_answer, first_order, parse_records, result_rows, translate

log = structlog.get_logger("tm.executor.venue")
# Harmless "not modified" answers (position mode, leverage, stop loss already as asked): the
# caller counts them as done, so they are neither exchange errors (metric, ``errors``) nor
# logged as failures.
NOT_MODIFIED = frozenset({POSITION_MODE_NOT_MODIFIED, LEVERAGE_NOT_MODIFIED, STOP_NOT_MODIFIED})
_NO_RETRY_CODES = {-1}   # pybit falls back to its defaults for an empty set


def _host_ms() -> int:
    return int(time.time() * 1000)


def synced_http(timestamp_ms: Callable[[], int], **kw: Any) -> Any:
    """A pybit ``unified_trading.HTTP`` whose signed requests carry ``timestamp_ms()``."""
    from pybit.unified_trading import HTTP

    class _SyncedHTTP(HTTP):
        # pybit's _prepare_headers, with the timestamp from the synced clock
        def _prepare_headers(self, payload, recv_window, content_type="application/json"):
            ts = timestamp_ms()
            auth = self._auth_binary if isinstance(payload, bytes) else self._auth
            return {"Content-Type": content_type, "X-BAPI-API-KEY": self.api_key,
                    "X-BAPI-SIGN": auth(payload=payload, recv_window=recv_window, timestamp=ts),
                    "X-BAPI-SIGN-TYPE": "2", "X-BAPI-TIMESTAMP": str(ts),
                    "X-BAPI-RECV-WINDOW": str(recv_window)}

    return _SyncedHTTP(**kw)




class VenueClient:
    """Typed, async Bybit V5 calls. ``fatal`` holds the last auth/permission error until a
    later call succeeds (the readiness check reads it)."""

    def __init__(self, settings: ExecutorSettings, metrics: ExecutorMetrics | None = None, *,
                 host_ms: Callable[[], int] = _host_ms) -> None:
        self.s = settings
        self.host_ms = host_ms
        self.clock_offset_ms: int | None = None     # venue − host, None until measured
        self.metrics = metrics
        self.url = settings.bybit_rest_url.rstrip("/")
        self._key = settings.bybit_api_key.get_secret_value() if settings.bybit_api_key else None
        self._secret = (settings.bybit_api_secret.get_secret_value()
                        if settings.bybit_api_secret else None)
        self._secrets = [s for s in (self._key, self._secret) if s]
        self._local = threading.local()
        self.history_supported = settings.order_history_fallback
        self.fatal: VenueError | None = None
        self.calls = 0
        self.errors = 0
        self.silent_until = 0.0          # time.monotonic() before which nothing is sent (403)
        self.ip_bans = 0
        # called with the silence's end (wall-clock epoch ms) after each 403, to keep it
        self.on_ip_ban: Callable[[int], Awaitable[None]] | None = None
        if metrics is not None:
            metrics.ip_ban_silence.set_function(self.ip_ban_remaining_s)

    # -- plumbing --------------------------------------------------------------------------
    def _session(self):
        http = getattr(self._local, "http", None)
        if http is None:
            http = synced_http(self.signing_ms, testnet=False, api_key=self._key,
                               api_secret=self._secret, timeout=self.s.venue_timeout_s,
                               recv_window=self.s.recv_window_ms, max_retries=1,
                               retry_codes=set(_NO_RETRY_CODES), force_retry=False,
                               logging_level=logging.WARNING)
            http.endpoint = self.url
            http.client.hooks["response"].append(check_answer)
            self._local.http = http
        return http

    blocking = True      # pybit over HTTP blocks: run it in a worker thread

    def _invoke(self, method: str, params: dict[str, Any]) -> Any:
        return getattr(self._session(), method)(**params)

    def signing_ms(self) -> int:
        """The venue's time as far as measured: host clock + the last offset."""
        return self.host_ms() + (self.clock_offset_ms or 0)

    async def sync_clock(self) -> int:
        """Measure the venue's clock (``/v5/market/time``); returns and keeps the offset
        (venue − host, ms, at the round trip's mid-point)."""
        t0 = self.host_ms()
        result = await self.call("get_server_time")
        t1 = self.host_ms()
        try:
            server_ms = (int(result["timeNano"]) // 1_000_000 if result.get("timeNano")
                         else int(result["timeSecond"]) * 1000)
        except (KeyError, TypeError, ValueError) as e:
            raise VenueTransient("get_server_time", f"malformed answer: {type(e).__name__}",
                                 ambiguous=True) from None
        self.clock_offset_ms = server_ms - (t0 + t1) // 2
        if self.metrics is not None:
            self.metrics.clock_offset.set(self.clock_offset_ms / 1000)
        log.info("executor.clock_synced", offset_ms=self.clock_offset_ms, round_trip_ms=t1 - t0)
        return self.clock_offset_ms

    def clock_problem(self) -> str | None:
        """Why the host clock is too far from the venue's to trade (None: fine or unmeasured)."""
        off = self.clock_offset_ms
        if off is not None and abs(off) > self.s.max_clock_skew_ms:
            return (f"host clock {'behind' if off > 0 else 'ahead of'} the venue by "
                    f"{abs(off)} ms, over TM_EXECUTOR_MAX_CLOCK_SKEW_MS={self.s.max_clock_skew_ms}")
        return None

    def check_clock(self) -> bool:
        """Readiness: the host clock is within ``max_clock_skew_ms`` of the venue's."""
        problem = self.clock_problem()
        if problem is not None:
            raise NotReady(f"clock skew: {problem}")
        return True

    def ip_ban_remaining_s(self) -> float:
        """Seconds of silence left after an HTTP 403 (0: requests may be sent)."""
        return max(self.silent_until - time.monotonic(), 0.0)

    def ip_ban_until_ms(self) -> int:
        """The silence's end as wall-clock epoch ms (0: not silent)."""
        left = self.ip_ban_remaining_s()
        return int(time.time() * 1000 + left * 1000) if left > 0 else 0

    def restore_ip_ban(self, until_ms: int) -> float:
        """Resume a silence that ends at ``until_ms`` (wall-clock epoch ms; a restart after a
        403); returns the seconds left (0: already over)."""
        left = (until_ms - time.time() * 1000) / 1000
        if left > 0:
            self.silent_until = max(self.silent_until, time.monotonic() + left)
            log.error("executor.ip_ban_resumed", silence_left_s=round(left, 1))
        return max(left, 0.0)

    def check_ip_ban(self) -> bool:
        """Readiness: not silent after an IP ban; raises :class:`NotReady` with the time left."""
        left = self.ip_ban_remaining_s()
        if left > 0:
            raise NotReady(f"venue banned our IP (HTTP 403): silent for {left:.0f} s more "
                           f"(TM_EXECUTOR_IP_BAN_SILENCE_S={self.s.ip_ban_silence_s:g})")
        return True

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Run pybit's ``method`` in a worker thread; returns the ``result`` object."""
        left = self.ip_ban_remaining_s()
        if left > 0:        # never reaches the venue: unambiguous, and not an exchange error
            raise VenueTransient(method, f"silent after HTTP 403 (IP ban) for {left:.0f} s more",
                                 http_status=403, ambiguous=False)
        t0 = time.perf_counter()
        self.calls += 1
        try:
            if self.blocking:
                answer = await asyncio.to_thread(self._invoke, method, params)
            else:                               # an in-process venue: no socket to wait on
                answer = self._invoke(method, params)
            result = answer.get("result") if isinstance(answer, dict) else None
            if not isinstance(result, dict):
                raise VenueTransient(method, "answer without a result object", ambiguous=True)
        except VenueError as e:
            self._failed(method, e)
            await self._keep_ban(e)
            raise
        except Exception as e:  # translated below, or re-raised untouched
            err = translate(method, e, self._secrets, max_wait_s=self.s.rate_limit_max_wait_s)
            if err is None:
                raise
            self._failed(method, err)
            await self._keep_ban(err)
            raise err from None     # the original text carries request parameters
        finally:
            if self.metrics is not None:
                self.metrics.exchange_latency.labels(method).observe(time.perf_counter() - t0)
        self.fatal = None
        return result

    async def _keep_ban(self, err: VenueError) -> None:
        """After a 403: hand the silence's end to ``on_ip_ban`` (a failure to keep it is
        logged: the silence in this process holds regardless)."""
        if err.http_status != 403 or self.on_ip_ban is None:
            return
        try:
            await self.on_ip_ban(self.ip_ban_until_ms())
        except Exception as e:  # noqa: BLE001 - never mask the venue error
            log.warning("executor.ip_ban_not_kept", error=f"{type(e).__name__}: {e}")

    def _failed(self, method: str, err: VenueError) -> None:
        if err.http_status == 403:
            self.ip_bans += 1
            self.silent_until = time.monotonic() + self.s.ip_ban_silence_s
            log.error("executor.ip_banned", endpoint=method, silence_s=self.s.ip_ban_silence_s,
                      error=err.message)
        if err.ret_code in NOT_MODIFIED:
            # "already so" (one-way mode, leverage): the wanted state, not an exchange error
            log.debug("executor.venue_not_modified", endpoint=method, code=err.code_label)
            return
        self.errors += 1
        if self.metrics is not None:
            self.metrics.exchange_errors.labels(method, err.code_label).inc()
        if isinstance(err, VenueFatal):
            self.fatal = err
        # a bare VenueError (not one of the three kinds) is a rejection, as its old default said
        kind = err.kind if isinstance(err, (VenueTransient, VenueRejected, VenueFatal)) \
            else ErrorClass.REJECTION
        log.info("executor.venue_error", endpoint=method, code=err.code_label,
                 kind=kind.value, ambiguous=err.ambiguous, error=err.message)

    # -- orders ----------------------------------------------------------------------------
    async def get_order(self, symbol: str, *, order_id: str | None = None,
                        link_id: str | None = None) -> VenueOrder | None:
        """The order by ``order_id`` or ``link_id`` (open or recently closed), or None.

        ``order/realtime`` returns open orders and recent closed ones by id; after a venue
        restart Bybit serves closed orders only from ``order/history``, which is asked next
        (a venue that lacks it, like the sim, answers 404 and is not asked again)."""
        ident = {"orderId": order_id} if order_id else {"orderLinkId": link_id}
        result = await self.call("get_open_orders", category="linear", symbol=symbol, **ident)
        order = first_order(result)
        if order is None and self.history_supported:
            try:
                result = await self.call("get_order_history", category="linear", symbol=symbol,
                                         **ident)
                order = first_order(result)
            except VenueRejected as e:
                if e.http_status != 404:
                    raise
                self.history_supported = False
                log.warning("executor.order_history_unsupported", venue=self.url)
        return order

    async def place_order(self, params: dict[str, Any]) -> str:
        """Create an order; returns the venue's ``orderId``."""
        result = await self.call("place_order", **params)
        order_id = result.get("orderId")
        if not order_id or isinstance(order_id, bool) or not isinstance(order_id, (str, int)):
            raise VenueTransient("place_order", "answer without orderId"
                                 + (f" (got {type(order_id).__name__})" if order_id else ""),
                                 ambiguous=True)
        return str(order_id)

    async def get_executions(self, symbol: str, order_id: str) -> list[VenueExecution]:
        rows = await self._pages("get_executions", 100, category="linear", symbol=symbol,
                                 orderId=order_id)
        return parse_records(VenueExecution.from_bybit, rows, "get_executions")

    async def executions_of_type(self, symbol: str, start_ms: int, end_ms: int,
                                 exec_type: str) -> list[dict]:
        """The account's executions of ``exec_type`` (``Funding``; ``Delivery``: the venue closing
        a delisted position) of ``symbol`` booked in ``[start_ms, end_ms]`` (at most 7 days
        apart: :func:`tm_executor.domain.funding.windows`), every page."""
        return await self._pages("get_executions", 100, category="linear", symbol=symbol,
                                 execType=exec_type, startTime=start_ms, endTime=end_ms)

    async def recent_trades(self, symbol: str) -> list[dict]:
        """The account's ``Trade`` executions of ``symbol`` in the venue's default span (Bybit:
        the last 7 days), every page."""
        return await self._pages("get_executions", 100, category="linear", symbol=symbol,
                                 execType="Trade")

    async def open_orders(self) -> list[VenueOrder]:
        rows = await self._pages("get_open_orders", 50, category="linear", settleCoin="USDT",
                                 openOnly=0)
        return parse_records(VenueOrder.from_bybit, rows, "get_open_orders")

    async def positions(self) -> list[ExchangePosition]:
        rows = await self._pages("get_positions", 200, category="linear", settleCoin="USDT")
        return parse_records(ExchangePosition.from_bybit, rows, "get_positions")

    async def _pages(self, method: str, limit: int, max_pages: int = 20,
                     **params: Any) -> list[dict]:
        rows: list[dict] = []
        cursor = None
        for _ in range(max_pages):
            result = await self.call(method, limit=limit, cursor=cursor, **params)
            rows += result_rows(method, result)
            cursor = result.get("nextPageCursor") or None
            if cursor is not None and not isinstance(cursor, str):
                raise VenueTransient(method, "malformed answer: nextPageCursor is a "
                                     f"{type(cursor).__name__}", ambiguous=True)
            if not cursor:
                break
        return rows

    # -- account set-up --------------------------------------------------------------------
    async def wallet(self) -> dict[str, Any]:
        result = await self.call("get_wallet_balance", accountType="UNIFIED")
        rows = result_rows("get_wallet_balance", result)
        if not rows:
            raise VenueRejected("get_wallet_balance", "no UNIFIED account in the answer")
        return rows[0]

    async def one_way_mode(self) -> str:
        """Switch linear USDT contracts to one-way mode; "already" answers count as done."""
        try:
            await self.call("switch_position_mode", category="linear", coin="USDT", mode=0)
            return "switched"
        except VenueRejected as e:
            if e.ret_code == POSITION_MODE_NOT_MODIFIED or "not modified" in e.message.lower():
                return "already one-way"
            raise

    async def set_leverage(self, symbol: str, leverage: str) -> str:
        try:
            await self.call("set_leverage", category="linear", symbol=symbol,
                            buyLeverage=leverage, sellLeverage=leverage)
            return "set"
        except VenueRejected as e:
            if e.ret_code == LEVERAGE_NOT_MODIFIED:
                return "unchanged"
            raise

    async def set_stop_loss(self, symbol: str, price: Decimal) -> str:
        """Place, move or (``price`` 0) cancel ``symbol``'s position stop loss on the venue
        (Bybit ``/v5/position/trading-stop``, ``tpslMode=Full``: the whole position, closed by
        a market order when the last price crosses it); "set", or "unchanged" when the venue
        holds that stop already."""
        try:
            await self.call("set_trading_stop", category="linear", symbol=symbol,
                            tpslMode="Full", positionIdx=0, stopLoss=str(price),
                            slTriggerBy="LastPrice", slOrderType="Market")
            return "set"
        except VenueRejected as e:
            if e.ret_code == STOP_NOT_MODIFIED:
                return "unchanged"
            raise

    async def instrument(self, symbol: str) -> InstrumentSpec:
        """``symbol``'s spec, in whatever status (:func:`tm_common.instruments.find_listed`:
        Bybit's default answer lists only ``Trading`` instruments)."""
        async def ask(params: dict[str, str]) -> dict[str, dict]:
            result = await self.call("get_instruments_info", **params)
            return {str(r.get("symbol")): r for r in result_rows("get_instruments_info", result)}

        row = await find_listed(symbol, ask)
        if row is None:
            raise VenueRejected("get_instruments_info",
                                f"unknown instrument {symbol} (in any status)")
        return parse_records(InstrumentSpec.from_info, [row], "get_instruments_info")[0]
