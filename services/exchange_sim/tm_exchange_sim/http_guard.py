"""The simulator's front door: a raw ASGI middleware that decides on the request line and the
headers alone, before one byte of a body is read.

For every HTTP request, in this order:

1. **Authentication.** The control API: A ``POST /sim/*`` needs ``Authorization: Bearer
   <TM_ADMIN_TOKEN>`` when a token is configured (compared in constant time): 401 with
   ``WWW-Authenticate: Bearer`` otherwise, whatever the body is (malformed JSON included, so an
   unauthenticated caller learns nothing about the schema). Without a token the sim is an open
   development venue (``tm demo``). Bybit's private API (``signed_paths``): its HMAC covers
   the body, so only the API key can be checked first; ``refuse_unsigned`` (the gateway's)
   answers Bybit's 10003 for a missing or unknown key, and the signature is checked after the
   bounded read.
2. **Body size.** A ``Content-Length`` above ``max_body_bytes`` is a 413, a malformed one a 400,
   both without reading the body.
3. **Media type.** A control POST must say ``Content-Type: application/json``: 415 otherwise.
4. **Bounded read.** The body is then read here, at most ``max_body_bytes`` of it: a body sent
   without ``Content-Length`` (chunked) that grows past the cap is refused with 413 as soon as it
   does, the rest left unread. The app below receives the body in one message, so nothing under
   this middleware ever holds more than the cap.

A refusal closes the connection (``Connection: close``) when a body may still be on its way, so
the server never reads what it refused.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Collection, Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tm_common.errors import TradeMatrixError

CONTROL_PREFIX = "/sim/"
JSON_TYPES = ("application/json",)


def bearer_refusal(authorization: str | None, token: str) -> str | None:
    """Why ``authorization`` does not carry ``token`` (``None`` when it does)."""
    scheme, _, cred = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not cred.strip():
        return "admin token required: missing bearer token"
    if not hmac.compare_digest(cred.strip().encode(), token.encode()):
        return "admin token required: invalid bearer token"
    return None


def is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in JSON_TYPES


class BodyTooLarge(TradeMatrixError):
    """The body grew past the cap while it was read."""


class HttpGuard:
    """The checks above, around ``app``. ``admin_token``: ``None`` = open control API.
    ``max_body_bytes``: the largest body accepted on any route (bytes, >= 1). ``signed_paths``
    and ``refuse_unsigned(path, headers)``: the API-key routes, and the answer (HTTP 200, a
    Bybit envelope) to a request on one of them that names no known key, else ``None``."""

    def __init__(self, app: ASGIApp, *, admin_token: str | None, max_body_bytes: int,
                 signed_paths: Collection[str] = (),
                 refuse_unsigned: Callable[[str, Mapping[str, str]], dict | None] | None = None,
                 ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        self.app = app
        self.admin_token = admin_token
        self.max_body_bytes = max_body_bytes
        self.signed_paths = frozenset(signed_paths)
        self.refuse_unsigned = refuse_unsigned

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        control = scope["method"] == "POST" and scope["path"].startswith(CONTROL_PREFIX)
        length_text = headers.get("content-length")
        body_expected = bool(length_text and length_text.strip() != "0") or \
            "chunked" in headers.get("transfer-encoding", "").lower()

        async def refuse(status: int, detail: str, extra: dict[str, str] | None = None) -> None:
            await _send_json(send, status, {"detail": detail}, extra or {},
                             close=body_expected)

        if control and self.admin_token is not None:
            why = bearer_refusal(headers.get("authorization"), self.admin_token)
            if why is not None:
                await refuse(401, why, {"www-authenticate": "Bearer"})
                return
        if self.refuse_unsigned is not None and scope["path"] in self.signed_paths:
            answer = self.refuse_unsigned(scope["path"], headers)
            if answer is not None:
                await _send_json(send, 200, answer, {}, close=body_expected)
                return
        if length_text is not None:
            if not length_text.strip().isdigit():
                await refuse(400, "Content-Length is not a number of bytes")
                return
            if int(length_text) > self.max_body_bytes:
                await refuse(413, f"request body over {self.max_body_bytes} bytes")
                return
        if control and body_expected and not is_json(headers.get("content-type")):
            await refuse(415, "control requests take a JSON body: send "
                         "Content-Type: application/json")
            return
        try:
            body = await _read_capped(receive, self.max_body_bytes)
        except BodyTooLarge:
            await refuse(413, f"request body over {self.max_body_bytes} bytes")
            return
        if body is None:            # the client went away before it finished sending
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_capped(receive: Receive, cap: int) -> bytes | None:
    """The whole body, or :class:`BodyTooLarge` once it passes ``cap`` bytes (the rest unread);
    ``None`` on a disconnect."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then defers to the server's (for
    the disconnect a streaming response waits on)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, status: int, doc: dict, extra: dict[str, str], *,
                     close: bool) -> None:
    payload = json.dumps(doc, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
