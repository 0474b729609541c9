"""The signal service built by its own ``build`` on the in-memory bus: a side feed that stops
shows in ``/readyz`` (check ``inputs``, the consumer keeps going), in the metrics (which pass
promtool) and in the signals; the feed resuming clears it."""

from __future__ import annotations

import httpx
from tm_common.bus import InMemoryBus
from tm_common.bus.streams import MD_FUNDING
from tm_common.service.app import create_app
from tm_common.testing.promtool import assert_promtool_clean
from tm_signal.app import build
from tm_signal.config import SignalSettings
from tm_signal.testing import FakeRegistry, signal_bundle

from .conftest import START, first_ms, publish_lockstep, signals


def parts_with_model():
    reg = FakeRegistry()
    reg.add("v1", signal_bundle("v1", first_bar_ms=first_ms(-250), seed=1), promote=True)
    settings = SignalSettings(db_enabled=False, service_name="signal", consumer_name="signal-0",
                              namespace="", read_block_ms=1)
    return build(settings, bus=InMemoryBus(), registry=reg)


async def readyz(parts) -> tuple[int, dict]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_app(parts.runtime())),
                                 base_url="http://t") as cl:
        r = await cl.get("/readyz")
    return r.status_code, r.json()


def exposition(parts) -> str:
    return parts.metrics.exposition().decode()


async def test_a_stopped_dvol_feed_is_named_in_readyz_metrics_and_signals_then_clears():
    parts = parts_with_model()
    consumer = parts.consumers[0]
    await parts.warm_up()
    # 20 bars (3.3 days) with funding but no DVOL after the warm-up's last point
    await publish_lockstep(parts.bus, START, 20, dvol=False, consumer=consumer)
    out = await signals(parts.bus)
    assert len(out) == 60                              # the mesh goes on: one signal per bar
    stale = [s["body"] for s in out if "stale dvol" in s["body"]["reason"]]
    assert stale and all("funding" not in b["reason"] for b in stale)
    code, body = await readyz(parts)
    assert code == 503 and body["not_ready"] == ["inputs"], body
    assert body["checks"]["inputs"].startswith("error: NotReady: degraded: BTCUSDT: stale dvol (age")
    text = exposition(parts)
    for inst in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        assert f'tm_signal_stale_input{{input="dvol",instrument="{inst}"}} 1.0' in text
        assert f'tm_signal_stale_input{{input="funding",instrument="{inst}"}} 0.0' in text
    age = [ln for ln in text.splitlines()
           if ln.startswith('tm_signal_input_age_seconds{input="dvol",instrument="ETHUSDT"}')]
    assert age and float(age[0].split()[-1]) > 2 * 86_400
    assert_promtool_clean(text)

    # the feed comes back: the next bars are fresh, readiness and gauges clear
    await publish_lockstep(parts.bus, START + 20, 3, consumer=consumer)
    last = (await signals(parts.bus))[-3:]
    assert all(s["body"]["reason"] == "ok" for s in last), [s["body"]["reason"] for s in last]
    code, body = await readyz(parts)
    assert code == 200, body
    assert 'tm_signal_stale_input{input="dvol",instrument="ETHUSDT"} 0.0' in exposition(parts)


async def test_the_service_consumes_md_funding():
    parts = parts_with_model()
    assert MD_FUNDING in parts.consumers[0].streams
    await parts.warm_up()
    await publish_lockstep(parts.bus, START, 10, consumer=parts.consumers[0])
    assert all(s["body"]["reason"] == "ok" for s in await signals(parts.bus))
    inst = parts.handler.engine.funding["SOLUSDT"]
    assert len(inst) >= 1       # pruned as bars go by: the newest rate known at the last close
    code, _ = await readyz(parts)
    assert code == 200
