"""The first half of the forged-order attack, on real Redis: a client with XADD rights adds a
``breaker.command_issued`` to ``risk.command`` (to trip the breaker, or to reset it). Risk holds
the ``risk.command`` key: the forged command is dead-lettered as ``unsigned`` and the breaker
does not move, while a trip through risk's admin endpoint (what ``tm kill`` and ``tm breaker``
call) is signed by risk's own bus and applied, and the breaker change it publishes is signed
with the ``risk.breaker`` key the executor and the sizer verify."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.signing import KeyRing
from tm_common.bus.streams import RISK_BREAKER, RISK_COMMAND
from tm_common.service.wiring import make_bus
from tm_common.testing.wait import wait_for_async
from tm_risk.app import build
from tm_risk.config import RiskSettings
from tm_risk.testing import command_env

KEYS = {"signing_key_risk_order": "o" * 64, "signing_key_risk_command": "c" * 64,
        "signing_key_risk_breaker": "b" * 64}
TOKEN = "t" * 40


async def test_a_forged_breaker_command_is_dead_lettered_and_an_admin_trip_is_signed(
        redis_url, namespace):
    from tm_common.testing.instruments import recorded_instruments_file

    settings = RiskSettings(redis_url=redis_url, namespace=namespace, db_enabled=False,
                            mode="backtest", consumer_name="risk-0", read_block_ms=50,
                            admin_token=SecretStr(TOKEN),
                            instruments_file=str(recorded_instruments_file()), **KEYS)
    bus = make_bus(settings)
    parts = build(settings, bus=bus)
    runtime = parts.runtime()
    await runtime.start()
    forger = RedisStreamsBus(redis_url, prefix=namespace)
    app = FastAPI()
    for r in parts.routers:
        app.include_router(r)
    try:
        await forger.publish(RISK_COMMAND, command_env("trip", 1, reason="forged"))
        await forger.publish(RISK_COMMAND, command_env("reset", 2, reason="forged"))

        async def dead() -> bool:
            return await forger.length(RISK_COMMAND + ".dlq") == 2
        await wait_for_async(dead, 10, "the forged commands dead-lettered")
        assert parts.handlers["handler"].state.breaker.state.value == "CLOSED"
        assert await forger.entries(RISK_BREAKER) == []

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://risk") as client:
            r = await client.post("/breaker/trip", json={"reason": "ops drill"},
                                  headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.json()["applied"] is True, r.text
        (_, change), = await forger.entries(RISK_BREAKER)
        assert '"to_state":"OPEN"' in change["body"]
        assert KeyRing({RISK_BREAKER: KEYS["signing_key_risk_breaker"]}).refusal(
            RISK_BREAKER, change) is None
        dead_reasons = [f["dlq_reason"].split(":")[0]
                        for _, f in await forger.entries(RISK_COMMAND + ".dlq")]
        assert dead_reasons == ["unsigned", "unsigned"]
    finally:
        await runtime.stop()
        await forger.close()
