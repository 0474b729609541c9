"""One request through the venue: faults, signature, rate limit, handler, envelope, pushes.

Every Bybit answer is HTTP 200 with ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``
(``time`` = the venue's time, :meth:`~tm_exchange_sim.state.SimState.venue_ms`); only injected
5xx faults and an IP ban (403, :mod:`tm_exchange_sim.ratelimit`) use another status.
Authenticated answers carry Bybit's ``X-Bapi-Limit*`` headers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal, overload

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from tm_common.decimals import NotADecimal, finite_decimal

from tm_exchange_sim.faults import FaultInjector
from tm_exchange_sim.matching import VenueError
from tm_exchange_sim.matching.errors import (
    INVALID_API_KEY,
    PARAMS_ERROR,
    RATE_LIMITED,
    params_error,
)
from tm_exchange_sim.metrics import SimMetrics
from tm_exchange_sim.ratelimit import IpGuard, RateLimiter
from tm_exchange_sim.signing import verify_rest
from tm_exchange_sim.ws import WsHub

Params = dict[str, Any]
Handler = Callable[[Params], dict]


def envelope(ret_code: int, ret_msg: str, result: dict, now_ms: int) -> dict:
    return {"retCode": ret_code, "retMsg": ret_msg, "result": result, "retExtInfo": {},
            "time": now_ms}


# ---- parameter helpers (Bybit answers 10001 for every malformed parameter) -----------------
def required(params: Params, name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise params_error(f"Param validation for '{name}' failed on the 'required' tag")
    return value


@overload
def decimal_param(params: Params, name: str, *, optional: Literal[False] = False) -> Decimal: ...
@overload
def decimal_param(params: Params, name: str, *, optional: bool) -> Decimal | None: ...
def decimal_param(params: Params, name: str, *, optional: bool = False) -> Decimal | None:
    value = params.get(name)
    if optional and (value is None or value == ""):
        return None
    value = required(params, name)
    if isinstance(value, float):
        value = repr(value)
    try:
        return finite_decimal(value)
    except NotADecimal as e:
        raise params_error(f"{name} invalid: {value!r}") from e


@overload
def int_param(params: Params, name: str, default: int, *, low: int | None = None,
              high: int | None = None) -> int: ...
@overload
def int_param(params: Params, name: str, default: None = None, *, low: int | None = None,
              high: int | None = None) -> int | None: ...
def int_param(params: Params, name: str, default: int | None = None, *, low: int | None = None,
              high: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        result = int(value)
    except (TypeError, ValueError) as e:
        raise params_error(f"{name} invalid: {value!r}") from e
    if (low is not None and result < low) or (high is not None and result > high):
        raise params_error(f"{name} out of range [{low}, {high}]: {result}")
    return result


def bool_param(params: Params, name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def linear_category(params: Params, *, default: str | None = None) -> str:
    category = params.get("category") or default
    if category is None:
        raise params_error("Param validation for 'category' failed on the 'required' tag")
    if category != "linear":
        raise params_error(f"Illegal category: the exchange sim supports 'linear' only, "
                           f"got {category!r}")
    return category


class Gateway:
    def __init__(self, faults: FaultInjector, limiter: RateLimiter, hub: WsHub,
                 metrics: SimMetrics, keys: Callable[[], dict[str, str]],
                 wall_ms: Callable[[], int], max_recv_window_ms: int,
                 venue_ms: Callable[[], int] | None = None) -> None:
        """``wall_ms``: the host clock (signatures, rate limits, bans); ``venue_ms``: the
        venue's time that answers carry (default: the host clock)."""
        self.faults = faults
        self.limiter = limiter
        self.ip_guard = IpGuard()
        self.venue_ms = venue_ms or wall_ms
        self.hub = hub
        self.metrics = metrics
        self.keys = keys
        self.wall_ms = wall_ms
        self.max_recv_window_ms = max_recv_window_ms

    def refuse_unknown_key(self, path: str, headers: Mapping[str, str]) -> dict | None:
        """Bybit's 10003 answer for a private request whose ``X-BAPI-API-KEY`` is missing or
        unknown, decided on the headers alone so that :class:`~tm_exchange_sim.http_guard.HttpGuard`
        refuses it before reading its body; ``None`` when the key is known (the signature over
        the body is checked later, by :meth:`handle`)."""
        key = headers.get("x-bapi-api-key", "")
        if key and key in self.keys():
            return None
        self.metrics.requests.labels(path, str(INVALID_API_KEY)).inc()
        return envelope(INVALID_API_KEY, VenueError(INVALID_API_KEY).ret_msg, {},
                        self.venue_ms())

    async def handle(self, request: Request, handler: Handler, *, private: bool) -> Response:
        path = request.url.path
        started = time.perf_counter()
        cfg = self.faults.config
        ip = request.client.host if request.client else ""
        until = self.ip_guard.banned(ip, self.wall_ms(), cfg.ip_limit_per_5s, cfg.ip_ban_s)
        if until is not None:
            self.metrics.requests.labels(path, "403").inc()
            return PlainTextResponse(f"403 Forbidden: access too frequent (IP banned until "
                                     f"{until} ms)", status_code=403)
        decision = self.faults.decide(path)
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if decision.http_5xx:
            self.metrics.faults.labels("http_5xx").inc()
            self.metrics.requests.labels(path, str(decision.http_5xx)).inc()
            return PlainTextResponse("<html><body>502/503 injected by the exchange sim"
                                     "</body></html>", status_code=decision.http_5xx)
        headers: dict[str, str] = {}
        try:
            params = await self._authorise_and_parse(request, private, headers)
            if decision.rate_limit:
                self.metrics.faults.labels("rate_limit").inc()
                now = self.wall_ms()
                headers.update(self.limiter.headers(self.limiter.limit(path), 0, now + 1000))
                raise VenueError(RATE_LIMITED)
            result = handler(params)
            body = envelope(0, "OK", result, self.venue_ms())
        except VenueError as e:
            body = envelope(e.ret_code, e.ret_msg, {}, self.venue_ms())
        await self.hub.publish_engine_events()
        self.metrics.requests.labels(path, str(body["retCode"])).inc()
        self.metrics.latency.labels(path).observe(time.perf_counter() - started)
        if decision.hold_s:
            self.metrics.faults.labels("timeout").inc()
            await asyncio.sleep(decision.hold_s)
        return JSONResponse(body, headers=headers)

    async def _authorise_and_parse(self, request: Request, private: bool,
                                   headers: dict[str, str]) -> Params:
        is_post = request.method == "POST"
        if is_post:
            raw = (await request.body()).decode("utf-8", errors="replace")
        else:
            raw = request.scope.get("query_string", b"").decode("latin-1")
        if private:
            auth = verify_rest(request.headers, raw, self.keys(), self.wall_ms(),
                               max_recv_window_ms=self.max_recv_window_ms)
            allowed, limit_headers = self.limiter.hit(auth.api_key, request.url.path,
                                                      self.wall_ms())
            headers.update(limit_headers)
            if not allowed:
                raise VenueError(RATE_LIMITED)
        if not is_post:
            return dict(request.query_params)
        if not raw.strip():
            return {}
        try:
            params = json.loads(raw)
        except ValueError as e:
            raise VenueError(PARAMS_ERROR, "request body is not valid JSON") from e
        if not isinstance(params, dict):
            raise VenueError(PARAMS_ERROR, "request body must be a JSON object")
        return params
