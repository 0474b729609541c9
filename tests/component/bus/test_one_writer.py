"""One writer per consumer group, on the in-memory bus (the backtest's transport): a second
instance that starts while the first has an entry in hand supersedes it; the first one's commit
lands nowhere, it stops consuming and says so (log, observer, /readyz, /metrics, /status); the
second one continues from the last committed state, so every input is counted exactly once."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from structlog.testing import capture_logs
from tm_common.bus import Consumer, InMemoryBus, WriterSuperseded
from tm_common.bus.observer import ConsumerObserver
from tm_common.service.app import create_app
from tm_common.service.runtime import ServiceRuntime
from tm_common.service.wiring import make_consumer
from tm_common.settings import CommonSettings
from tm_common.testing.counting import CountingHandler

from .conftest import publish


class Seen(ConsumerObserver):
    def __init__(self) -> None:
        self.generations: list[int] = []
        self.refusals: list[WriterSuperseded] = []

    def generation(self, group, generation):
        self.generations.append(generation)

    def superseded(self, group, error):
        self.refusals.append(error)


def consumer(bus, name, handler, obs=None):
    return Consumer(bus, handler, group="g", consumer=name, streams=["in"], state_key="state:g",
                    observer=obs, retry_backoff_s=0.001)


async def confidences(bus):
    return [json.loads(f["body"])["confidence"] for _, f in await bus.entries("test.out")]


async def test_a_second_instance_mid_event_supersedes_the_first_and_nothing_stale_lands():
    bus = InMemoryBus()
    await publish(bus, 8)
    b_obs, a_obs = Seen(), Seen()
    b = consumer(bus, "risk-b", CountingHandler(), b_obs)
    seen = {}

    def hook(ev, n):
        if n == 4:                                   # A has input 4 in hand: B starts now
            seen["state"] = bus._state["state:g"]
    a_handler = CountingHandler(hook=hook)
    a = consumer(bus, "risk-a", a_handler, a_obs)
    real_handle = a_handler.handle

    async def handle_then_b_starts(event):
        out = await real_handle(event)
        if a_handler.n == 4:
            await b.start()
        return out
    a_handler.handle = handle_then_b_starts
    with capture_logs() as logs:
        await a.run_until_idle()
    assert a.superseded is not None and a.stopping
    assert (a.generation, b.generation, a.superseded.current) == (1, 2, 2)
    assert a_obs.generations == [1] and a_obs.refusals == [a.superseded]
    line = next(x for x in logs if x["event"] == "bus.writer_superseded")
    assert (line["log_level"], line["group"], line["consumer"], line["generation"],
            line["newer"]) == ("error", "g", "risk-a", 1, 2)
    # nothing of A's refused commit landed: outputs, state and ack are those of input 3
    assert await confidences(bus) == [1.0, 2.0, 3.0]
    assert bus._state["state:g"] == seen["state"] == b"3"
    assert a_handler.n == 3                          # its memory is back to the committed state
    assert await a.step(block_ms=None) == 0          # a superseded consumer reads nothing
    # B took A's pending entries over at its start and goes on from the saved state
    assert await b.run_until_idle() == 5
    assert await confidences(bus) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert b_obs.generations == [2] and b_obs.refusals == []
    (g,) = await bus.group_info("in")
    assert g["pending"] == 0 and g["lag"] == 0


def test_the_stale_instance_says_so_on_readyz_metrics_and_status():
    s = CommonSettings(service_name="risk", consumer_name="risk-a", namespace="ns:",
                       read_block_ms=20)
    bus = InMemoryBus()
    a = make_consumer(s, bus, CountingHandler(), ["in"])
    rt = ServiceRuntime(s, bus, [a], lag_poll_interval_s=0.05)
    with TestClient(create_app(rt)) as client:
        client.portal.call(publish, bus, 1)
        r = client.get("/readyz")
        for _ in range(100):
            if r.status_code == 200 and a.handled_count == 1:
                break
            r = client.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"]["writer"] == "ok"
        assert 'tm_consumer_writer_generation{group="risk"} 1.0' in client.get("/metrics").text
        b = make_consumer(s.model_copy(update={"consumer_name": "risk-b"}), bus,
                          CountingHandler(), ["in"])
        client.portal.call(b.start)
        client.portal.call(publish, bus, 1, 1)      # A reads it, is refused, stops
        for _ in range(200):
            if a.superseded is not None:
                break
            client.portal.call(_sleep, 0.01)
        r = client.get("/readyz")
        assert r.status_code == 503
        assert set(r.json()["not_ready"]) == {"writer", "tasks"}
        assert r.json()["checks"]["writer"] == (
            "superseded: consumer group 'risk': writer generation 1 was superseded by "
            "generation 2; this instance stopped consuming")
        m = client.get("/metrics").text
        assert 'tm_consumer_writer_superseded{group="risk"} 1.0' in m
        assert "tm_service_ready 0.0" in m
        st = client.get("/status").json()
        assert st["writer"]["risk"]["generation"] == 1
        assert "superseded by generation 2" in st["writer"]["risk"]["superseded"]
        assert st["handled"] == 1


async def _sleep(s):
    import asyncio
    await asyncio.sleep(s)
