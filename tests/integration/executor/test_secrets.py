"""The API key and secret never appear in the executor's logs (DEBUG level, pybit's own
loggers included), /status, /readyz, /metrics or the events it publishes: with good
credentials, and with a wrong secret whose failure paths (10004 on every call) put error text
everywhere."""

from __future__ import annotations

import asyncio

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import EXEC_REPORT
from tm_common.testing.sim import KEY, SECRET

from .conftest import intent_envelope, publish_intents, report_bodies, terminal_by_intent, wait_sync

WRONG_SECRET = "wrong-secret-zq81-do-not-log"


def stream_text(redis_url, namespace) -> str:
    async def go():
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            return repr(await bus.entries(EXEC_REPORT)) + repr(await bus.entries("exec.venue"))
        finally:
            await bus.close()
    return asyncio.run(go())


def publish(redis_url, namespace, envs):
    async def go():
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            await publish_intents(bus, envs)
        finally:
            await bus.close()
    asyncio.run(go())


def ended(redis_url, namespace):
    async def go():
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            return terminal_by_intent(await report_bodies(bus))
        finally:
            await bus.close()
    return asyncio.run(go())


def endpoints_text(ex) -> str:
    return "".join(ex.get(p).text for p in ("/status", "/readyz", "/metrics", "/healthz"))


def test_good_credentials_never_leak(sim, redis_url, namespace, executor_factory):
    ex = executor_factory(sim, redis_url, namespace, TM_LOG_LEVEL="DEBUG")
    publish(redis_url, namespace, [intent_envelope(f"sec-{i}", bar=i) for i in range(3)])
    wait_sync(lambda: len(ended(redis_url, namespace)) == 3, 20, "intents ended")
    st = ex.get("/status").json()
    assert st["extra"]["handler"]["orders"] == {"Filled": 3}
    seen = endpoints_text(ex) + stream_text(redis_url, namespace)
    assert ex.stop() == 0
    logs = ex.logs()
    assert "executor.order_reported" in logs and len(logs) > 2000
    for secret in (SECRET, KEY):
        assert secret not in logs and secret not in seen


def test_wrong_secret_fails_loudly_without_leaking(sim, redis_url, namespace, executor_factory):
    ex = executor_factory(sim, redis_url, namespace, wait_ready=False, TM_LOG_LEVEL="DEBUG",
                          TM_EXECUTOR_BYBIT_API_SECRET=WRONG_SECRET)
    r = wait_sync(lambda: (x := ex.get("/readyz")).status_code == 503
                  and "10004" in x.text and x, 20, "not ready with the reason")
    body = r.json()
    assert "preflight" in body["not_ready"] and "venue" in body["not_ready"]
    assert "get_wallet_balance failed: 10004" in body["checks"]["preflight"]

    publish(redis_url, namespace, [intent_envelope("sec-bad")])
    wait_sync(lambda: ended(redis_url, namespace), 20, "intent rejected")

    async def rejected():
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            return [b for t, b in await report_bodies(bus) if t == "order.rejected"]
        finally:
            await bus.close()
    (rej,) = asyncio.run(rejected())
    assert rej["ret_code"] == 10004 and rej["source"] == "executor" and "not ready" in rej["reason"]
    seen = endpoints_text(ex) + stream_text(redis_url, namespace)
    assert ex.stop() == 0
    logs = ex.logs()
    assert "executor.preflight_failed" in logs
    for secret in (WRONG_SECRET, KEY):
        assert secret not in logs and secret not in seen
    assert "Request →" not in logs           # pybit's request dump never reaches a log line
