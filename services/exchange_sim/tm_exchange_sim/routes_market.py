"""Public market routes (Bybit V5 server time, instruments-info, kline, tickers, funding
history) and Deribit's DVOL index.

Everything is served up to the replay clock only: no bar, funding rate or DVOL value from
after the venue's current time is visible. The kline answer starts with the bar forming at the
venue's time (:mod:`tm_exchange_sim.forming`), as Bybit's does, when
``TM_SIM_KLINE_FORMING_ROW`` is on. ``/v5/market/time`` is the host
clock: the clock signed requests are checked against (``X-BAPI-TIMESTAMP``), which is what
Bybit documents it for (syncing a client's signing clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tm_common.history import BAR_INTERVAL_MS
from tm_common.instruments import TRADING

from tm_exchange_sim.gateway import Gateway, Params, int_param, linear_category, required
from tm_exchange_sim.matching.costs import round_to_tick
from tm_exchange_sim.matching.errors import params_error
from tm_exchange_sim.serialise import instrument_list, kline_row, money, num
from tm_exchange_sim.state import SimState

DAY_MS = 24 * 3600 * 1000
DERIBIT_DAILY = ("1D", "86400")
DERIBIT_MAX_POINTS = 1000
FUNDING_PAGE_MAX = 200


def add_market_routes(app: FastAPI, state: SimState, gw: Gateway,
                      host_ns: Callable[[], int]) -> None:
    """``host_ns``: the host clock (ns) that ``/v5/market/time`` tells."""
    def server_time(params: Params) -> dict:
        now_ns = host_ns()
        return {"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)}

    def instruments(params: Params) -> dict:
        linear_category(params)
        symbol = params.get("symbol")
        if symbol and symbol not in state.instruments:
            return {"category": "linear", "list": [], "nextPageCursor": ""}
        # the engine's table (a listing it has delivered answers status Closed); as on Bybit,
        # only Trading instruments unless the query names another status
        status = params.get("status") or TRADING
        return {"category": "linear",
                "list": instrument_list(state.engine.instruments, symbol, status),
                "nextPageCursor": ""}

    def kline(params: Params) -> dict:
        linear_category(params, default="linear")
        symbol = required(params, "symbol")
        if symbol not in state.instruments:
            raise params_error(f"Not supported symbols: {symbol}")
        interval = required(params, "interval")
        if str(interval) != "240":
            raise params_error(f"interval {interval!r} not supported by the exchange sim "
                               "(shipped history is 4h: use 240)")
        limit = int_param(params, "limit", 200, low=1, high=1000)
        start, end = int_param(params, "start"), int_param(params, "end")
        forming = state.forming_bar(symbol) if state.settings.sim_kline_forming_row else None
        rows = [forming] if forming is not None and (start is None or start <= forming.open_time_ms) \
            and (end is None or forming.open_time_ms <= end) else []
        rows += state.feed.klines(symbol, state.clock_ms, start, end, limit - len(rows))
        return {"category": "linear", "symbol": symbol, "list": [kline_row(b) for b in rows]}

    def tickers(params: Params) -> dict:
        linear_category(params)
        symbol = params.get("symbol")
        if symbol and symbol not in state.instruments:
            raise params_error(f"Not supported symbols: {symbol}")
        rows = [_ticker(state, s) for s in state.instruments if symbol in (None, s)]
        return {"category": "linear", "list": [r for r in rows if r]}

    def funding_history(params: Params) -> dict:
        """Settled rates with ``startTime <= settle <= endTime`` up to the clock, newest first
        (Bybit: startTime alone is an error; neither gives the newest ``limit``)."""
        linear_category(params)
        symbol = required(params, "symbol")
        if symbol not in state.instruments:
            raise params_error(f"Not supported symbols: {symbol}")
        start, end = int_param(params, "startTime"), int_param(params, "endTime")
        if start is not None and end is None:
            raise params_error("endTime is required when startTime is given")
        limit = int_param(params, "limit", FUNDING_PAGE_MAX, low=1, high=FUNDING_PAGE_MAX)
        upto = state.now_ms if end is None else min(end, state.now_ms)
        times = sorted((t for t in state.feed.funding.get(symbol, {})
                        if t <= upto and (start is None or t >= start)), reverse=True)[:limit]
        rates = state.feed.funding[symbol] if times else {}
        return {"category": "linear",
                "list": [{"symbol": symbol, "fundingRate": num(rates[t]),
                          "fundingRateTimestamp": str(t)} for t in times]}

    for path, handler in (("/v5/market/time", server_time),
                          ("/v5/market/instruments-info", instruments),
                          ("/v5/market/kline", kline), ("/v5/market/tickers", tickers),
                          ("/v5/market/funding/history", funding_history)):
        _register(app, gw, path, handler)

    @app.get("/api/v2/public/get_volatility_index_data")
    async def deribit_dvol(request: Request):
        return await _deribit(request, state, gw)


def _register(app: FastAPI, gw: Gateway, path: str, handler) -> None:
    async def endpoint(request: Request):
        return await gw.handle(request, handler, private=False)

    endpoint.__name__ = path.strip("/").replace("/", "_").replace("-", "_")
    app.add_api_route(path, endpoint, methods=["GET"])


def _ticker(state: SimState, symbol: str) -> dict | None:
    recent = state.feed.recent(symbol, state.clock_ms, 6)
    if not recent:
        return None
    last = Decimal(recent[0].close)
    spec = state.engine.instruments[symbol]
    tick = spec.tick_size
    bid = round_to_tick(last, tick, "Sell")
    first_open = Decimal(recent[-1].open)
    volume = sum((Decimal(b.volume) for b in recent), Decimal(0))
    turnover = sum((Decimal(b.volume) * Decimal(b.close) for b in recent), Decimal(0))
    now = state.now_ms
    interval = spec.funding_interval_ms
    next_funding = now - now % interval + interval
    settled = [t for t in state.feed.funding.get(symbol, {}) if t <= now]
    rate = state.feed.funding[symbol][max(settled)] if settled else None
    return {
        "symbol": symbol, "lastPrice": recent[0].close, "indexPrice": recent[0].close,
        "markPrice": recent[0].close, "prevPrice24h": recent[-1].open,
        "price24hPcnt": money((last - first_open) / first_open) if first_open else "0",
        "highPrice24h": max((b.high for b in recent), key=Decimal),
        "lowPrice24h": min((b.low for b in recent), key=Decimal),
        "prevPrice1h": recent[0].open, "openInterest": "0", "openInterestValue": "0",
        "turnover24h": money(turnover), "volume24h": num(volume),
        "fundingRate": num(rate) if rate is not None else "",
        "nextFundingTime": str(next_funding), "predictedDeliveryPrice": "", "basisRate": "",
        "deliveryFeeRate": "", "deliveryTime": str(spec.delivery_time_ms),
        "bid1Price": num(bid), "bid1Size": "1", "ask1Price": num(bid + tick), "ask1Size": "1",
        "basis": "",
    }


async def _deribit(request: Request, state: SimState, gw: Gateway):
    """Deribit ``public/get_volatility_index_data`` (JSON-RPC shape), daily resolution only."""
    decision = gw.faults.decide(request.url.path)
    if decision.latency_s:
        await asyncio.sleep(decision.latency_s)
    if decision.http_5xx:
        return JSONResponse({"jsonrpc": "2.0", "error": {"code": 13028,
                                                         "message": "temporarily_unavailable"}},
                            status_code=decision.http_5xx)
    q = request.query_params
    now = state.now_ms

    def error(message: str) -> JSONResponse:
        return JSONResponse({"jsonrpc": "2.0", "error": {"code": -32602,
                                                         "message": "Invalid params",
                                                         "data": {"reason": message}},
                             "usIn": now * 1000, "usOut": now * 1000, "usDiff": 0,
                             "testnet": False}, status_code=400)

    if q.get("currency", "").upper() != "BTC":
        return error("the exchange sim ships BTC DVOL only")
    if q.get("resolution", "1D") not in DERIBIT_DAILY:
        return error("the exchange sim ships daily DVOL only (resolution 1D)")
    try:
        start = int(q.get("start_timestamp", "0"))
        end = int(q.get("end_timestamp", str(now)))
    except ValueError:
        return error("start_timestamp and end_timestamp must be integers (ms)")
    points = state.feed.dvol_known(now, start, end)
    continuation = None
    if len(points) > DERIBIT_MAX_POINTS:
        points = points[-DERIBIT_MAX_POINTS:]
        continuation = points[0].day_ms
    data = [[p.day_ms, *(float(p.close),) * 4] for p in points]
    return JSONResponse({"jsonrpc": "2.0", "result": {"data": data,
                                                      "continuation": continuation},
                         "usIn": now * 1000, "usOut": now * 1000, "usDiff": 0,
                         "testnet": False})


__all__ = ["BAR_INTERVAL_MS", "DAY_MS", "add_market_routes"]
