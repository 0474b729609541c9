"""Bybit V5 request authentication, verified exactly as pybit signs.

REST: ``X-BAPI-SIGN`` = HMAC-SHA256 hex of ``timestamp + api_key + recv_window + payload`` with
payload = the raw JSON body (POST) or the query string as sent (GET). The timestamp must satisfy
``server_time - recv_window <= timestamp < server_time + 1000``.
WebSocket: ``{"op": "auth", "args": [api_key, expires, signature]}`` with signature = HMAC-SHA256
hex of ``"GET/realtime" + expires`` and ``expires`` in the future.
Errors name the failing header, never a key, secret or expected signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from tm_exchange_sim.matching.errors import INVALID_API_KEY, SIGN_ERROR, TIMESTAMP_ERROR, VenueError

FUTURE_TOLERANCE_MS = 1000


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_signature(secret: str, timestamp: str | int, api_key: str, recv_window: str | int,
                   payload: str) -> str:
    return hmac_hex(secret, f"{timestamp}{api_key}{recv_window}{payload}")


def ws_signature(secret: str, expires: int | str) -> str:
    return hmac_hex(secret, f"GET/realtime{expires}")


@dataclass(frozen=True, slots=True)
class AuthResult:
    api_key: str


def verify_rest(headers: Mapping[str, str], payload: str, keys: Mapping[str, str],
                now_ms: int, *, max_recv_window_ms: int = 60_000) -> AuthResult:
    """Check one signed REST request; raise :class:`VenueError` 10003/10002/10004."""
    api_key = headers.get("x-bapi-api-key", "")
    secret = keys.get(api_key) if api_key else None
    if secret is None:
        raise VenueError(INVALID_API_KEY)
    ts_text = headers.get("x-bapi-timestamp", "")
    rw_text = headers.get("x-bapi-recv-window", "5000")
    try:
        timestamp = int(ts_text)
        recv_window = int(rw_text)
    except ValueError:
        raise VenueError(TIMESTAMP_ERROR, "invalid request, please check your timestamp and "
                         "recv_window param (X-BAPI-TIMESTAMP / X-BAPI-RECV-WINDOW not integers)")
    if not 0 < recv_window <= max_recv_window_ms:
        raise VenueError(TIMESTAMP_ERROR, f"invalid recv_window: must be in (0, "
                         f"{max_recv_window_ms}]")
    if not now_ms - recv_window <= timestamp < now_ms + FUTURE_TOLERANCE_MS:
        raise VenueError(TIMESTAMP_ERROR, "invalid request, please check your server timestamp "
                         f"or recv_window param. req_timestamp[{timestamp}],"
                         f"server_timestamp[{now_ms}],recv_window[{recv_window}]")
    given = headers.get("x-bapi-sign", "")
    expected = rest_signature(secret, ts_text, api_key, rw_text, payload)
    if not given or not hmac.compare_digest(given.lower(), expected):
        raise VenueError(SIGN_ERROR)
    return AuthResult(api_key=api_key)


def verify_ws_auth(args: object, keys: Mapping[str, str], now_ms: int) -> AuthResult:
    """Check a private WebSocket ``auth`` op; raise :class:`VenueError` on refusal."""
    if not isinstance(args, list) or len(args) != 3:
        raise VenueError(INVALID_API_KEY, "Params Error: auth args must be "
                         "[api_key, expires, signature]")
    api_key, expires, signature = args
    secret = keys.get(api_key) if isinstance(api_key, str) else None
    if secret is None:
        raise VenueError(INVALID_API_KEY, "Invalid apikey")
    try:
        expires_ms = int(expires)
    except (TypeError, ValueError):
        raise VenueError(TIMESTAMP_ERROR, "Params Error: expires must be an integer")
    if expires_ms <= now_ms:
        raise VenueError(TIMESTAMP_ERROR, "Request expired")
    expected = ws_signature(secret, expires)
    if not isinstance(signature, str) or not hmac.compare_digest(signature.lower(), expected):
        raise VenueError(SIGN_ERROR, "Request not authorized")
    return AuthResult(api_key=api_key)
