"""Private Bybit V5 routes: orders (create, amend, cancel, cancel-all, realtime, history),
executions, positions (list, closed PnL, trading stop), leverage, mode and wallet."""

from __future__ import annotations

import bisect
from decimal import Decimal

from fastapi import FastAPI, Request

from tm_exchange_sim.gateway import (
    Gateway,
    Handler,
    Params,
    bool_param,
    decimal_param,
    int_param,
    linear_category,
    required,
)
from tm_exchange_sim.matching import OrderRequest
from tm_exchange_sim.matching.errors import RetCodeError, params_error
from tm_exchange_sim.matching.stops import DEFAULT_SL_TRIGGER_BY, SL_TRIGGER_BY
from tm_exchange_sim.metrics import SimMetrics
from tm_exchange_sim.retention import query_window
from tm_exchange_sim.routes_history import history_handlers, page_of
from tm_exchange_sim.serialise import execution_dict, order_dict, position_dict, wallet_entry
from tm_exchange_sim.state import SimState

UNSUPPORTED_ORDER_FIELDS = ("triggerPrice", "takeProfit", "stopLoss", "tpslMode")
MAX_CLOSED_ORDERS = 500


def _supported_order(params: Params) -> None:
    """A linear order's parameters, refused for the fields the simulator does not model."""
    linear_category(params)
    for name in UNSUPPORTED_ORDER_FIELDS:
        if params.get(name) not in (None, ""):
            raise params_error(f"{name} is not supported by the exchange sim")


def _stop_loss_request(params: Params) -> tuple[str, Decimal, str]:
    """``(symbol, stopLoss, slTriggerBy)`` of a trading-stop request, refused (10001) for what
    the simulator does not model: a Partial mode, hedge mode, a Limit stop order, a take profit
    or a trailing stop. ``stopLoss`` "0" cancels the stop."""
    linear_category(params)
    symbol = required(params, "symbol")
    if required(params, "tpslMode") != "Full":
        raise params_error(f"tpslMode {params['tpslMode']!r}: the exchange sim supports Full "
                           "only")
    if int_param(params, "positionIdx", 0) != 0:
        raise params_error("position idx not match position mode")
    for name in ("takeProfit", "trailingStop"):
        value = decimal_param(params, name, optional=True)
        if value is not None and value != 0:
            raise params_error(f"{name} is not supported by the exchange sim")
    if (params.get("slOrderType") or "Market") != "Market":
        raise params_error("slOrderType Limit is not supported by the exchange sim")
    trigger_by = params.get("slTriggerBy") or DEFAULT_SL_TRIGGER_BY
    if trigger_by not in SL_TRIGGER_BY:
        raise params_error(f"slTriggerBy invalid: {trigger_by!r}")
    return symbol, decimal_param(params, "stopLoss"), trigger_by


def _order_ident(params: Params) -> tuple[str | None, str | None]:
    """``(orderId, orderLinkId)`` of a request that names one order; at least one is required."""
    order_id, link_id = params.get("orderId"), params.get("orderLinkId")
    if not order_id and not link_id:
        raise params_error("orderId or orderLinkId is required")
    return order_id, link_id


def trade_handlers(state: SimState, metrics: SimMetrics | None = None) -> dict:
    """(HTTP method, path) → handler(params) → result object, for the private V5 endpoints.
    Served over HTTP by :func:`add_trade_routes` and called directly by the in-process venue
    of the backtest, so both answer exactly alike."""
    def engine():
        return state.engine

    def create(params: Params) -> dict:
        _supported_order(params)
        order_type = required(params, "orderType")
        req = OrderRequest(
            symbol=required(params, "symbol"), side=required(params, "side"),
            order_type=order_type, qty=decimal_param(params, "qty"),
            price=decimal_param(params, "price", optional=True) if order_type == "Limit"
            else None,
            time_in_force=params.get("timeInForce") or "GTC",
            reduce_only=bool_param(params, "reduceOnly"),
            close_on_trigger=bool_param(params, "closeOnTrigger"),
            order_link_id=str(params.get("orderLinkId") or ""),
            position_idx=int_param(params, "positionIdx", 0))
        order = engine().place_order(req)
        if metrics is not None:
            metrics.orders.labels(order.symbol, order.order_type).inc()
        return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def cancel(params: Params) -> dict:
        linear_category(params)
        symbol = required(params, "symbol")
        order_id, link_id = _order_ident(params)
        order = engine().cancel_order(symbol, order_id, link_id)
        return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def amend(params: Params) -> dict:
        _supported_order(params)
        symbol = required(params, "symbol")
        order_id, link_id = _order_ident(params)
        order = engine().amend_order(symbol, order_id, link_id,
                                     qty=decimal_param(params, "qty", optional=True),
                                     price=decimal_param(params, "price", optional=True))
        return {"orderId": order.order_id, "orderLinkId": order.order_link_id}

    def cancel_all(params: Params) -> dict:
        linear_category(params)
        cancelled = engine().cancel_all(params.get("symbol"), params.get("baseCoin"),
                                        params.get("settleCoin"))
        return {"list": [{"orderId": o.order_id, "orderLinkId": o.order_link_id}
                         for o in cancelled], "success": "1"}

    def realtime(params: Params) -> dict:
        linear_category(params)
        eng = engine()
        symbol = params.get("symbol")
        order_id, link_id = params.get("orderId"), params.get("orderLinkId")
        if order_id or link_id:
            found = eng.find_order(order_id, link_id)
            orders = [found] if found and symbol in (None, found.symbol) else []
        else:
            if not (symbol or params.get("settleCoin") or params.get("baseCoin")):
                raise params_error("symbol, baseCoin or settleCoin is required for linear")
            base = params.get("baseCoin")
            matching = [o for o in eng.orders.values()
                        if symbol in (None, o.symbol)
                        and (not base or state.instruments[o.symbol].base_coin == base)]
            open_only = int_param(params, "openOnly", 0, low=0, high=2)
            if open_only == 0:
                orders = [o for o in matching if o.is_open]
            else:
                orders = [o for o in matching if not o.is_open][-MAX_CLOSED_ORDERS:]
        orders = sorted(orders, key=lambda o: (o.created_ms, o.seq), reverse=True)
        page, cursor = page_of(orders, params, 20, 50)
        return {"category": "linear", "nextPageCursor": cursor,
                "list": [order_dict(o) for o in page]}

    def executions(params: Params) -> dict:
        """Executions, newest first. By ``orderId``/``orderLinkId``: that order's (``startTime``
        and ``endTime`` filter when given); otherwise in Bybit's query window
        (:func:`tm_exchange_sim.retention.query_window`: 7 days at most, the last 7 by
        default)."""
        linear_category(params)
        symbol = params.get("symbol")
        order_id, link_id = params.get("orderId"), params.get("orderLinkId")
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        if not order_id and not link_id:
            start, end = query_window(state.now_ms, start, end)
        exec_type = params.get("execType")
        eng = engine()
        # An order's executions from its index (the list in execution order, as the full scan).
        candidates = (eng.executions_by_order.get(order_id, []) if order_id
                      else eng.executions_by_link.get(link_id, []) if link_id
                      else eng.executions_by_kind.get((symbol, exec_type), []) if symbol and exec_type
                      else eng.executions)
        if start is not None:   # every list is in execution order, so in time: skip the older
            candidates = candidates[bisect.bisect_left(candidates, start,
                                                       key=lambda e: e.exec_time_ms):]
        rows = [e for e in candidates
                if symbol in (None, e.symbol) and order_id in (None, "", e.order_id)
                and link_id in (None, "", e.order_link_id)
                and exec_type in (None, "", e.exec_type)
                and (start is None or e.exec_time_ms >= start)
                and (end is None or e.exec_time_ms <= end)]
        rows.reverse()
        page, cursor = page_of(rows, params, 50, 100)
        return {"category": "linear", "nextPageCursor": cursor,
                "list": [execution_dict(e) for e in page]}

    def positions(params: Params) -> dict:
        linear_category(params)
        eng = engine()
        symbol = params.get("symbol")
        if symbol:
            if symbol not in state.instruments:
                raise params_error(f"symbol invalid: {symbol}")
            rows = [eng.account.position(symbol)]
        elif params.get("settleCoin") == "USDT":
            rows = [p for s, p in sorted(eng.account.positions.items()) if p.size != 0]
        else:
            raise params_error("symbol or settleCoin is required")
        page, cursor = page_of(rows, params, 20, 200)
        return {"category": "linear", "nextPageCursor": cursor,
                "list": [position_dict(p, eng.marks.get(p.symbol)) for p in page]}

    def set_leverage(params: Params) -> dict:
        linear_category(params)
        engine().set_leverage(required(params, "symbol"), decimal_param(params, "buyLeverage"),
                              decimal_param(params, "sellLeverage"))
        return {}

    def trading_stop(params: Params) -> dict:
        engine().set_trading_stop(*_stop_loss_request(params))
        return {}

    def switch_mode(params: Params) -> dict:
        linear_category(params)
        if not (params.get("symbol") or params.get("coin")):
            raise params_error("symbol or coin is required")
        engine().switch_mode(int_param(params, "mode", low=0, high=3))
        return {}

    def wallet(params: Params) -> dict:
        if params.get("accountType") != "UNIFIED":
            raise params_error("accountType only support UNIFIED")
        coins = params.get("coin")
        entry = wallet_entry(engine())
        if coins and "USDT" not in str(coins).split(","):
            entry["coin"] = []
        return {"list": [entry]}

    def journaled(path: str, handler: Handler) -> Handler:
        """A POST's input goes to the venue's journal whether it is taken or refused, with
        that outcome (a restarted venue replays both alike, and checks that what was taken is
        taken again: tm_exchange_sim.restore)."""
        def call(params: Params) -> dict:
            outcome = "error"
            try:
                out = handler(params)
                outcome = "ok"
                return out
            except RetCodeError:
                outcome = "refused"
                raise
            finally:
                state.record("trade", method="POST", path=path, params=params, outcome=outcome)
        return call

    posts = {"/v5/order/create": create, "/v5/order/amend": amend, "/v5/order/cancel": cancel,
             "/v5/order/cancel-all": cancel_all, "/v5/position/set-leverage": set_leverage,
             "/v5/position/switch-mode": switch_mode,
             "/v5/position/trading-stop": trading_stop}
    return {
        **{("POST", path): journaled(path, h) for path, h in posts.items()},
        ("GET", "/v5/order/realtime"): realtime,
        ("GET", "/v5/execution/list"): executions,
        ("GET", "/v5/position/list"): positions,
        ("GET", "/v5/account/wallet-balance"): wallet,
        **history_handlers(state),
    }


def add_trade_routes(app: FastAPI, state: SimState, gw: Gateway,
                     metrics: SimMetrics) -> frozenset[str]:
    """Register the private routes; returns their paths (signed with an API key)."""
    handlers = trade_handlers(state, metrics)
    for (method, path), handler in handlers.items():
        _register(app, gw, method, path, handler)
    return frozenset(path for _, path in handlers)


def _register(app: FastAPI, gw: Gateway, method: str, path: str, handler) -> None:
    async def endpoint(request: Request):
        return await gw.handle(request, handler, private=True)

    endpoint.__name__ = path.strip("/").replace("/", "_").replace("-", "_")
    app.add_api_route(path, endpoint, methods=[method], include_in_schema=True)
