"""Admin endpoints: ``POST /breaker/trip``, ``POST /breaker/kill`` and ``POST /breaker/reset``.

Both need ``Authorization: Bearer <TM_ADMIN_TOKEN>`` (compared in constant time); a missing or
wrong token → 401 with a JSON message; no token configured → 403 ``admin token not configured``.
The endpoint never changes the breaker itself: it appends a ``BreakerCommandIssued`` to
``risk.command`` (see :mod:`tm_risk.commands`) and waits up to ``admin_wait_s`` for the handler to
apply it: 200 with the outcome, or 202 if it is still queued. 409 when the transition table does not
allow the command in the current state (e.g. a trip while OPEN). JSON body ``{"reason": "..."}``
(≤ 200 characters): optional for a trip, required (non-blank) for a kill and a reset (400
otherwise). A kill is allowed in every state (OPEN too: it flattens again and takes the automatic
recovery away). The command's ``issued_by`` (the audit trail's "who") is the token's name
(``TM_ADMIN_NAME``) and, when the caller sends ``X-TM-Actor`` (the ``tm`` CLI sends the OS
user), ``"<name> (cli user <actor>)"``. The token never appears in a response or a log line.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from tm_common.bus.protocol import Bus, TransportError

from tm_risk.commands import RISK_COMMAND, command_envelope
from tm_risk.domain.breaker import Trigger, can_fire
from tm_risk.handler import RiskHandler

log = structlog.get_logger("tm.risk.admin")
MAX_BODY = 16_384
MAX_REASON = 200
_TRIGGERS = {"trip": Trigger.MANUAL_TRIP, "reset": Trigger.MANUAL_RESET, "kill": Trigger.KILL}
NEEDS_REASON = ("kill", "reset")
MAX_ACTOR = 64


def _unauthorized(detail: str) -> JSONResponse:
    return JSONResponse({"error": "unauthorized", "detail": detail}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


def check_bearer(authorization: str | None, token: str | None) -> JSONResponse | None:
    """None when ``authorization`` carries the configured token, else the error response."""
    if not token:
        return JSONResponse({"error": "forbidden", "detail": "admin token not configured"},
                            status_code=403)
    scheme, _, cred = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not cred.strip():
        return _unauthorized("missing bearer token")
    if not hmac.compare_digest(cred.strip().encode(), token.encode()):
        return _unauthorized("invalid bearer token")
    return None


async def _reason(request: Request) -> str | JSONResponse:
    raw = await request.body()
    if not raw.strip():
        return ""
    if len(raw) > MAX_BODY:
        return JSONResponse({"error": "bad request",
                             "detail": f"body larger than {MAX_BODY} bytes"}, 413)
    try:
        doc: Any = json.loads(raw)
    except (ValueError, RecursionError):     # RecursionError: absurdly deep nesting
        return JSONResponse({"error": "bad request", "detail": "body must be JSON"}, 400)
    reason = doc.get("reason", "") if isinstance(doc, dict) else None
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        return JSONResponse({"error": "bad request",
                             "detail": f"reason must be a string of at most {MAX_REASON} chars"}, 400)
    return reason


def issued_by(token_name: str, actor: str | None) -> str:
    """The audit trail's "who": the token's name, plus the actor the client reports (printable,
    at most ``MAX_ACTOR`` characters)."""
    a = "".join(c for c in (actor or "") if c.isprintable()).strip()[:MAX_ACTOR]
    return f"{token_name} (cli user {a})" if a else token_name


def admin_router(settings: Any, bus: Bus, handler: RiskHandler) -> APIRouter:
    """The breaker endpoints for ``handler`` (the in-process risk handler) on ``bus``."""
    router = APIRouter()
    secret = settings.admin_token
    wait_s = float(getattr(settings, "admin_wait_s", 2.0))

    async def command(request: Request, action: str) -> JSONResponse:
        denied = check_bearer(request.headers.get("authorization"),
                              secret.get_secret_value() if secret is not None else None)
        if denied is not None:
            log.warning("risk.admin_denied", action=action, status=denied.status_code)
            return denied
        reason = await _reason(request)
        if isinstance(reason, JSONResponse):
            return reason
        if action in NEEDS_REASON and not reason.strip():
            cli = "tm kill" if action == "kill" else "tm breaker reset"
            return JSONResponse({"error": "bad request", "detail": f"a {action} needs a reason: "
                                 f'a JSON body {{"reason": "..."}} ({cli} --reason TEXT)'}, 400)
        state = handler.state.breaker.state
        if not can_fire(state, _TRIGGERS[action]):
            return JSONResponse({"error": "conflict", "state": state.value,
                                 "detail": f"{action} is not allowed in state {state.value}"}, 409)
        who = issued_by(str(getattr(settings, "admin_name", "admin")),
                        request.headers.get("x-tm-actor"))
        env = command_envelope(action, reason=reason, now_ns=time.time_ns(),  # type: ignore[arg-type]
                               issued_by=who)
        cid = env.body.command_id  # type: ignore[attr-defined]
        try:
            await bus.publish(RISK_COMMAND, env)
        except TransportError as e:
            return JSONResponse({"error": "unavailable", "detail": f"bus: {type(e).__name__}"}, 503)
        log.info("risk.admin_command", action=action, command_id=cid, reason=reason, who=who)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            result = handler.command_results.get(cid)
            if result is not None:
                return JSONResponse({"command_id": cid, "action": action, **result}, 200)
            await asyncio.sleep(0.02)
        return JSONResponse({"command_id": cid, "action": action, "applied": False,
                             "detail": "queued"}, 202)

    @router.post("/breaker/trip")
    async def trip(request: Request) -> JSONResponse:
        return await command(request, "trip")

    @router.post("/breaker/kill")
    async def kill(request: Request) -> JSONResponse:
        return await command(request, "kill")

    @router.post("/breaker/reset")
    async def reset(request: Request) -> JSONResponse:
        return await command(request, "reset")

    return router
