"""The in-process venue for the backtest: the exchange sim's state and request handlers behind
pybit's method names, so the executor's code path is the one it uses against Bybit or the sim.

Answers are the same Bybit V5 JSON the sim serves over HTTP (the same handler functions build
them); a refusal raises pybit's ``InvalidRequestError`` with the retCode, exactly as pybit does.
"""

from __future__ import annotations

import time
from typing import Any

from pybit.exceptions import InvalidRequestError
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.matching.errors import VenueError
from tm_exchange_sim.routes_trade import trade_handlers
from tm_exchange_sim.serialise import instrument_list
from tm_exchange_sim.state import SimState

PYBIT_METHODS = {
    "place_order": ("POST", "/v5/order/create"),
    "amend_order": ("POST", "/v5/order/amend"),
    "cancel_order": ("POST", "/v5/order/cancel"),
    "cancel_all_orders": ("POST", "/v5/order/cancel-all"),
    "get_order_history": ("GET", "/v5/order/history"),
    "get_closed_pnl": ("GET", "/v5/position/closed-pnl"),
    "get_open_orders": ("GET", "/v5/order/realtime"),
    "get_executions": ("GET", "/v5/execution/list"),
    "get_positions": ("GET", "/v5/position/list"),
    "set_leverage": ("POST", "/v5/position/set-leverage"),
    "switch_position_mode": ("POST", "/v5/position/switch-mode"),
    "get_wallet_balance": ("GET", "/v5/account/wallet-balance"),
}


class InProcessBybit:
    """A pybit ``HTTP``-like session over a :class:`SimState` (no network, no signing)."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._handlers = trade_handlers(state)
        self.endpoint = "inprocess://venue"

    @classmethod
    def from_settings(cls, settings: ExchangeSimSettings | None = None) -> InProcessBybit:
        return cls(SimState(settings or ExchangeSimSettings()))

    def advance(self, bar_time_ms: int) -> None:
        """Close bars up to ``bar_time_ms`` (what ``POST /sim/clock`` does in the mesh)."""
        if bar_time_ms > self.state.clock_ms:
            self.state.advance(bar_time_ms)

    def _answer(self, result: dict) -> dict:
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                "time": self.state.now_ms}

    def get_instruments_info(self, **params: Any) -> dict:
        return self._answer({"category": "linear", "nextPageCursor": "",
                             "list": instrument_list(self.state.instruments, params.get("symbol"))})

    def __getattr__(self, name: str):
        route = PYBIT_METHODS.get(name)
        if route is None:
            raise AttributeError(f"the in-process venue does not implement {name}")
        handler = self._handlers[route]

        def call(**params: Any) -> dict:
            try:
                return self._answer(handler({k: v for k, v in params.items() if v is not None}))
            except VenueError as e:
                raise InvalidRequestError(request=f"{route[0]} {route[1]}", message=e.ret_msg,
                                          status_code=e.ret_code, time=time.strftime("%H:%M:%S"),
                                          resp_headers={}) from e
        return call
