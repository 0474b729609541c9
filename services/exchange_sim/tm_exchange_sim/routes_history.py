"""Private Bybit V5 history routes: ``/v5/order/history`` and ``/v5/position/closed-pnl``, with
Bybit's query windows and retention on the venue's clock (:mod:`tm_exchange_sim.retention`)."""

from __future__ import annotations

from collections.abc import Callable

from tm_exchange_sim.gateway import Params, int_param, linear_category
from tm_exchange_sim.matching.errors import params_error
from tm_exchange_sim.retention import order_kept, query_window, record_kept
from tm_exchange_sim.serialise import closed_pnl_dict, order_dict
from tm_exchange_sim.state import SimState


def page_of(items: list, params: Params, default: int, maximum: int) -> tuple[list, str]:
    """One page of ``items`` by ``limit`` (``default``, 1 to ``maximum``) and ``cursor`` (an
    offset), with the next page's cursor ("" on the last)."""
    limit = int_param(params, "limit", default, low=1, high=maximum)
    offset = int_param(params, "cursor", 0, low=0)
    more = offset + limit < len(items)
    return items[offset:offset + limit], str(offset + limit) if more else ""


def history_handlers(state: SimState) -> dict[tuple[str, str], Callable[[Params], dict]]:
    """(HTTP method, path) → handler, like :func:`tm_exchange_sim.routes_trade.trade_handlers`
    (which includes these)."""
    def order_history(params: Params) -> dict:
        """Closed orders still kept, ``createdTime`` in the window, newest first; filters
        ``symbol``, ``baseCoin``, ``settleCoin``, ``orderId``, ``orderLinkId``, ``orderStatus``;
        ``limit`` 1-50 (20)."""
        linear_category(params)
        eng = state.engine
        now = state.now_ms
        lo, hi = query_window(now, int_param(params, "startTime"), int_param(params, "endTime"))
        symbol, base = params.get("symbol"), params.get("baseCoin")
        settle, status = params.get("settleCoin"), params.get("orderStatus")
        if symbol and symbol not in state.instruments:
            raise params_error(f"symbol invalid: {symbol}")
        if settle and settle != "USDT":
            return {"category": "linear", "nextPageCursor": "", "list": []}
        wanted = {"orderId": params.get("orderId"), "orderLinkId": params.get("orderLinkId")}
        rows = [o for o in eng.orders.values()
                if order_kept(o, now) and lo <= o.created_ms <= hi
                and symbol in (None, "", o.symbol)
                and base in (None, "", state.instruments[o.symbol].base_coin)
                and status in (None, "", o.status)
                and wanted["orderId"] in (None, "", o.order_id)
                and wanted["orderLinkId"] in (None, "", o.order_link_id)]
        rows.sort(key=lambda o: (o.created_ms, o.seq), reverse=True)
        page, cursor = page_of(rows, params, 20, 50)
        return {"category": "linear", "nextPageCursor": cursor,
                "list": [order_dict(o) for o in page]}

    def closed_pnl(params: Params) -> dict:
        """Closed-PnL records kept, ``createdTime`` in the window, newest first; ``symbol``;
        ``limit`` 1-100 (50)."""
        linear_category(params)
        now = state.now_ms
        lo, hi = query_window(now, int_param(params, "startTime"), int_param(params, "endTime"))
        symbol = params.get("symbol")
        if symbol and symbol not in state.instruments:
            raise params_error(f"symbol invalid: {symbol}")
        rows = [c for c in reversed(state.engine.closed_pnl)
                if record_kept(c.created_ms, now) and lo <= c.created_ms <= hi
                and symbol in (None, "", c.symbol)]
        page, cursor = page_of(rows, params, 50, 100)
        return {"category": "linear", "nextPageCursor": cursor,
                "list": [closed_pnl_dict(c) for c in page]}

    return {("GET", "/v5/order/history"): order_history,
            ("GET", "/v5/position/closed-pnl"): closed_pnl}
