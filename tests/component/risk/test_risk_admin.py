"""The admin routes in process (ASGI) on the in-memory bus, with the handler consuming commands."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from tm_common.bus import InMemoryBus
from tm_common.bus.streams import RISK_BREAKER
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_risk.admin import check_bearer
from tm_risk.app import build
from tm_risk.commands import RISK_COMMAND
from tm_risk.config import RiskSettings

TOKEN = "s3cr3t-admin-6d2e8f10b4c7"


def _client(token: str | None, *, wait_s: float = 2.0):
    """The risk service's own parts (``build``) on the in-memory bus; the app is its admin
    router alone (the runtime is not started: the test runs the consumer)."""
    settings = RiskSettings(redis_url="redis://unused", admin_wait_s=wait_s,
                            admin_token=SecretStr(token) if token else None,
                            consumer_name="r0", read_block_ms=20, stale_check_interval_s=0)
    parts = build(settings, bus=InMemoryBus())
    parts.handler.set_instruments(DEFAULT_INSTRUMENTS, "test")      # what the venue would say
    app = FastAPI()
    for router in parts.routers:
        app.include_router(router)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://risk")
    return client, parts.bus, parts.handler, parts.consumers[0]


def test_check_bearer():
    assert check_bearer(f"Bearer {TOKEN}", TOKEN) is None
    assert check_bearer(f"bearer   {TOKEN} ", TOKEN) is None
    for header in (None, "", TOKEN, f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x", "Bearer s3cr3t"):
        r = check_bearer(header, TOKEN)
        assert r is not None and r.status_code == 401 and TOKEN.encode() not in r.body
    r = check_bearer(f"Bearer {TOKEN}", None)
    assert r.status_code == 403 and b"admin token not configured" in r.body


async def test_no_token_configured_refuses_with_403():
    client, bus, _, _ = _client(None)
    async with client:
        for path in ("/breaker/trip", "/breaker/reset"):
            r = await client.post(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 403 and r.json()["detail"] == "admin token not configured"
    assert await bus.entries(RISK_COMMAND) == []


async def test_trip_goes_through_the_command_stream_and_the_handler():
    client, bus, handler, consumer = _client(TOKEN)
    task = asyncio.create_task(consumer.run())
    try:
        async with client:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert (await client.post("/breaker/trip")).status_code == 401
            r = await client.post("/breaker/trip", headers=auth, json={"reason": "x" * 201})
            assert r.status_code == 400
            r = await client.post("/breaker/trip", headers=auth, json={"reason": "drill"})
            assert r.status_code == 200 and r.json()["state"] == "OPEN", r.text
            assert handler.state.breaker.state == "OPEN"
            (_, fields), = await bus.entries(RISK_BREAKER)
            assert fields["type"] == "breaker.state_changed" and '"manual_trip"' in fields["body"]
            (_, cmd), = await bus.entries(RISK_COMMAND)
            assert cmd["type"] == "breaker.command_issued" and TOKEN not in str(cmd)
            assert (await client.post("/breaker/trip", headers=auth)).status_code == 409
            r = await client.post("/breaker/reset", headers=auth)
            assert r.status_code == 400 and "needs a reason" in r.json()["detail"]
            r = await client.post("/breaker/reset", headers=auth, json={"reason": "  "})
            assert r.status_code == 400 and handler.state.breaker.state == "OPEN"
            r = await client.post("/breaker/reset", headers=auth, json={"reason": "drill over"})
            assert r.status_code == 200 and r.json()["state"] == "CLOSED"
    finally:
        consumer.stop()
        await task


async def test_a_command_not_yet_applied_answers_202():
    client, bus, handler, _ = _client(TOKEN, wait_s=0.05)      # no consumer running
    async with client:
        r = await client.post("/breaker/trip", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 202 and r.json()["applied"] is False
    assert len(await bus.entries(RISK_COMMAND)) == 1 and handler.state.breaker.state == "CLOSED"


async def test_hostile_bodies_are_4xx_and_issue_no_command():
    client, bus, _, _ = _client(TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000          # json.loads would raise RecursionError
    async with client:
        for body, code in ((b"{not json", 400), (b"[" * 5000 + b"]" * 5000, 400),
                           (b'{"reason": "' + b"x" * 20_000 + b'"}', 413), (deep, 413),
                           (b'{"reason": 7}', 400), (b"[1, 2]", 400)):
            r = await client.post("/breaker/trip", headers=auth, content=body)
            assert r.status_code == code, (body[:30], r.status_code, r.text)
            assert r.json()["error"] == "bad request"
    assert await bus.entries(RISK_COMMAND) == []
