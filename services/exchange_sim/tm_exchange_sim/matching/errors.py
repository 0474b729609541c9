"""Venue errors as Bybit V5 reports them: ``retCode`` and ``retMsg``.

The engine raises :class:`RetCodeError`; the HTTP layer turns it into the response envelope, the
in-process backtest venue into a rejection event. Messages never contain credentials.

This is not :class:`tm_common.errors.VenueError` (a caller's failed venue call: network, HTTP
status, ambiguity, retry-after, transient or not): it is the simulated venue's own verdict on a
request it serves, always a retCode, and it never reaches a bus consumer. ``VenueError`` remains
as this module's old name for it until the engine, gateway, signing and ws modules use
``RetCodeError``.
"""

from __future__ import annotations

from tm_common.errors import TradeMatrixError

PARAMS_ERROR = 10001
TIMESTAMP_ERROR = 10002
INVALID_API_KEY = 10003
SIGN_ERROR = 10004
RATE_LIMITED = 10006
TPSL_NOT_MODIFIED = 34040
ORDER_NOT_FOUND = 110001
INSUFFICIENT_BALANCE = 110007
REDUCE_ONLY_UNSATISFIED = 110017
POSITION_MODE_NOT_MODIFIED = 110025
LEVERAGE_NOT_MODIFIED = 110043
DUPLICATE_ORDER_LINK_ID = 110072
MIN_NOTIONAL_UNMET = 110094

DEFAULT_MESSAGES = {
    PARAMS_ERROR: "Request parameter error.",
    TIMESTAMP_ERROR: "invalid request, please check your server timestamp or recv_window param",
    INVALID_API_KEY: "API key is invalid.",
    SIGN_ERROR: "Error sign, please check your signature generation algorithm.",
    RATE_LIMITED: "Too many visits. Exceeded the API Rate Limit.",
    TPSL_NOT_MODIFIED: "not modified",
    ORDER_NOT_FOUND: "Order does not exist.",
    INSUFFICIENT_BALANCE: "ab not enough for new order",
    REDUCE_ONLY_UNSATISFIED: "Reduce-only rule not satisfied",
    POSITION_MODE_NOT_MODIFIED: "Position mode is not modified",
    LEVERAGE_NOT_MODIFIED: "leverage not modified",
    DUPLICATE_ORDER_LINK_ID: "OrderLinkedID is duplicate",
    MIN_NOTIONAL_UNMET: "Order notional value below the lower limit",
}


class RetCodeError(TradeMatrixError):
    """A request the simulated venue refuses; ``ret_code`` is Bybit's ``retCode``."""

    def __init__(self, ret_code: int, ret_msg: str | None = None) -> None:
        self.ret_code = ret_code
        self.ret_msg = ret_msg or DEFAULT_MESSAGES.get(ret_code, "error")
        super().__init__(f"{self.ret_code}: {self.ret_msg}")


VenueError = RetCodeError  # the old name (engine, gateway, signing, ws, tm_app.venue, tests)


def params_error(msg: str) -> RetCodeError:
    return RetCodeError(PARAMS_ERROR, msg)
