"""The app factory and runtime on the in-memory transport: endpoints, wiring, drain, restart."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Sequence

from fastapi.testclient import TestClient
from tm_common.bus.handler import Emit, StatefulHandler
from tm_common.bus.memory import InMemoryBus
from tm_common.events.base import Envelope
from tm_common.logging import configure_logging
from tm_common.service.app import create_app
from tm_common.service.runtime import ServiceRuntime
from tm_common.service.wiring import make_consumer, state_key, with_log_context
from tm_common.settings import CommonSettings
from tm_common.testing.factories import bar_event

SECRET = "unit-secret-5d1e0c-8a7f2b"
IN, OUT = "t.in", "t.out"


def settings(**kw) -> CommonSettings:
    base = {"service_name": "svc", "consumer_name": "svc-0", "namespace": "ns:",
            "admin_token": SECRET, "read_block_ms": 20, "max_deliveries": 3,
            "reclaim_idle_ms": 1234, "reclaim_interval_s": 0.7}
    base.update(kw)
    return CommonSettings(**base)


class Echo:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s, self.started = delay_s, asyncio.Event()

    async def handle(self, event: Envelope) -> Sequence[Emit]:
        self.started.set()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        import structlog
        structlog.get_logger("t").info("echo.handled")
        return [Emit(OUT, event.body)]


class Counting(Echo):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def snapshot(self) -> bytes:
        return str(self.n).encode()

    def restore(self, data: bytes | None) -> None:
        self.n = int(data or 0)


def test_make_consumer_wires_settings():
    s, bus = settings(), InMemoryBus()
    c = make_consumer(s, bus, Counting(), [IN], batch=7)
    assert (c.group, c.consumer, c.streams) == ("svc", "svc-0", (IN,))
    assert c.state_key == state_key(s) == "ns:state:svc"
    assert (c.max_deliveries, c.reclaim_idle_ms, c.reclaim_interval_s, c.block_ms, c.batch) == \
        (3, 1234, 0.7, 20, 7)
    assert isinstance(c.handler, StatefulHandler)
    assert make_consumer(s, bus, Echo(), [IN]).state_key is None     # stateless: nothing saved
    assert not isinstance(with_log_context(Echo()), StatefulHandler)


def test_endpoints_over_a_running_runtime():
    s, bus = settings(), InMemoryBus()
    consumer = make_consumer(s, bus, Echo(), [IN])
    flags = {"models": True}

    async def db_ok() -> bool:
        return True

    def broken() -> bool:
        raise RuntimeError(f"cannot log in with {SECRET}")

    rt = ServiceRuntime(s, bus, [consumer], lag_poll_interval_s=0.05,
                        ready_checks={"models": lambda: flags["models"], "db": db_ok},
                        status_extra=lambda: {"model": "v7", "api_key": "k", "n": SECRET})
    with TestClient(create_app(rt)) as client:
        assert client.get("/healthz").json() == {"status": "ok", "service": "svc"}
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"] == {
            "redis": "ok", "tasks": "ok", "models": "ok", "db": "ok"}

        flags["models"] = False
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["not_ready"] == ["models"]
        assert r.json()["checks"]["models"] == "not ready"
        rt.ready_checks["broken"] = broken
        body = client.get("/readyz").json()
        assert body["not_ready"] == ["models", "broken"]
        assert body["checks"]["broken"] == "error: RuntimeError: cannot log in with ***"
        del rt.ready_checks["broken"]
        flags["models"] = True

        sent = [bar_event("BTCUSDT", i, ts_init_ns=time.time_ns()) for i in range(3)]
        for e in sent:
            client.portal.call(bus.publish, IN, e)
        deadline = time.monotonic() + 5
        while client.get("/status").json()["handled"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.15)                                    # one more lag poll
        st = client.get("/status").json()
        assert st["handled"] == 3 and st["dead_lettered"] == 0
        assert (st["service"], st["group"], st["consumer"]) == ("svc", "svc", "svc-0")
        assert st["last_event"]["event_id"] == sent[-1].event_id and st["last_event"]["stream"] == IN
        assert st["streams"] == {IN: {"lag": 0, "pending": 0}}
        assert st["extra"] == {"model": "v7", "api_key": "***", "n": "***"}
        assert SECRET not in client.get("/status").text

        assert client.get("/readyz").status_code == 200
        m = client.get("/metrics", follow_redirects=False)
        assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
        assert 'tm_events_consumed_total{stream="t.in",type="bar.closed"} 3.0' in m.text
        assert 'tm_consumer_lag{group="svc",stream="t.in"} 0.0' in m.text
        assert "tm_service_ready 1.0" in m.text
        outs = client.portal.call(bus.entries, OUT)
        assert [f["causation_id"] for _, f in outs] == [e.event_id for e in sent]
    assert consumer.stopping                                  # lifespan shutdown stopped it


async def test_stop_finishes_the_entry_in_hand():
    s, bus = settings(), InMemoryBus()
    handler = Echo(delay_s=0.3)
    rt = ServiceRuntime(s, bus, [make_consumer(s, bus, handler, [IN])])
    await rt.start()
    await bus.publish(IN, bar_event(i=0, ts_init_ns=time.time_ns()))
    await bus.publish(IN, bar_event(i=1, ts_init_ns=time.time_ns()))
    await asyncio.wait_for(handler.started.wait(), 5)
    await rt.stop()                                   # while the first one is being handled
    assert rt.handled_count == 1
    assert len(await bus.entries(OUT)) == 1
    (g,) = await bus.group_info(IN)
    assert g["pending"] + g["lag"] == 1                # the second one waits for the next start


class FlakyBus(InMemoryBus):
    """Raises an unexpected (non-transport) error on the first read, like NOGROUP would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 1

    async def read(self, *a, **kw):
        if self.fail:
            self.fail -= 1
            raise RuntimeError("NOGROUP no such consumer group")
        return await super().read(*a, **kw)


async def test_a_crashed_consumer_is_restarted_and_logs_say_why():
    out = io.StringIO()
    s = settings()
    configure_logging(s, stream=out)
    bus = FlakyBus()
    rt = ServiceRuntime(s, bus, [make_consumer(s, bus, Echo(), [IN])])
    await rt.start()
    ev = bar_event("ETHUSDT", 4, ts_init_ns=time.time_ns())
    await bus.publish(IN, ev)
    deadline = time.monotonic() + 5
    while rt.handled_count < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    ok, checks = await rt.check_ready()
    await rt.stop()
    assert rt.handled_count == 1 and ok and checks["tasks"] == "ok"
    assert rt.metrics.registry.get_sample_value("tm_task_restarts_total", {"task": "consumer:svc"}) == 1
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    crashed = [x for x in lines if x["event"] == "service.task_crashed"]
    assert crashed and "NOGROUP" in crashed[0]["error"]
    (handled,) = [x for x in lines if x["event"] == "echo.handled"]
    assert handled["correlation_id"] == ev.correlation_id and handled["instrument"] == "ETHUSDT"
    assert SECRET not in out.getvalue()


async def test_a_slow_ready_check_times_out():
    s, bus = settings(), InMemoryBus()

    async def hangs() -> bool:
        await asyncio.sleep(10)
        return True

    rt = ServiceRuntime(s, bus, ready_checks={"models": hangs}, ready_timeout_s=0.1)
    ok, checks = await rt.check_ready()
    assert not ok and checks["models"] == "timed out after 0.1 s"


async def test_background_tasks_run_restart_after_a_crash_and_stop_with_the_service():
    s, bus = settings(), InMemoryBus()
    runs: list[str] = []

    async def ticker(stop: asyncio.Event) -> None:
        runs.append("start")
        if len(runs) == 1:
            raise ConnectionError("websocket dropped")
        await stop.wait()                          # until the service stops
        runs.append("stopped")

    async def one_shot(stop: asyncio.Event) -> None:
        runs.append("backfilled")

    rt = ServiceRuntime(s, bus, background={"ticker": ticker, "backfill": one_shot})
    await rt.start()
    deadline = time.monotonic() + 5
    while runs.count("start") < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    ok, checks = await rt.check_ready()
    assert ok and checks["tasks"] == "ok"          # a finished one-shot job is not "dead"
    await rt.stop()
    assert runs.count("start") == 2 and runs[-1] == "stopped" and "backfilled" in runs
    assert rt.metrics.registry.get_sample_value("tm_task_restarts_total", {"task": "ticker"}) == 1
