"""The in-process venue for the backtest: pybit's own session, answered by the exchange sim's
state and request handlers instead of the network, so the executor's code path (down to pybit's
methods) is the one it uses against Bybit or the sim.

Answers are the same Bybit V5 JSON the sim serves over HTTP (the same handler functions build
them); a refusal raises pybit's ``InvalidRequestError`` with the retCode, exactly as pybit does.
"""

from __future__ import annotations

import time
from typing import Any

from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP
from tm_common.instruments import TRADING
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.matching.errors import VenueError
from tm_exchange_sim.routes_trade import trade_handlers
from tm_exchange_sim.serialise import instrument_list
from tm_exchange_sim.state import SimState

_INSTRUMENTS_INFO = "/v5/market/instruments-info"


class InProcessBybit(HTTP):
    """pybit's ``HTTP`` session with its transport replaced by a :class:`SimState` (no network,
    no signing): every method is pybit's own, so its arguments and paths are the ones the
    executor sends to Bybit or the sim, and no table of pybit's endpoints is kept here."""

    def __init__(self, state: SimState) -> None:
        super().__init__()
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
        self.drop_push_events()

    def drop_push_events(self) -> None:
        """Forget the engine's WebSocket pushes (executions, wallet): no private stream is
        served in process, the executor reads its executions over REST, so they would only
        pile up for as long as the run lasts."""
        self.state.engine.pop_events()

    def _answer(self, result: dict) -> dict:
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                "time": self.state.now_ms}

    def _submit_request(self, method: Any = None, path: Any = None, query: Any = None,
                        auth: bool = False) -> dict:
        """Where pybit would send the request: the simulator's handler for ``(method, path)``."""
        route = (method, str(path).removeprefix(self.endpoint))
        params = self._clean_query(query)
        if route[1] == _INSTRUMENTS_INFO:
            return self._answer({"category": "linear", "nextPageCursor": "", "list":
                                 instrument_list(self.state.engine.instruments,
                                                 params.get("symbol"),
                                                 params.get("status") or TRADING)})
        handler = self._handlers.get(route)
        if handler is None:
            raise NotImplementedError(f"the in-process venue does not serve {route[0]} {route[1]}")
        try:
            return self._answer(handler(params))
        except VenueError as e:
            raise InvalidRequestError(request=f"{route[0]} {route[1]}", message=e.ret_msg,
                                      status_code=e.ret_code, time=time.strftime("%H:%M:%S"),
                                      resp_headers={}) from e
