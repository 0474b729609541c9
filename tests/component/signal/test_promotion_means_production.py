"""Promotion means production: a ``models.promoted`` event activates a version only if the real
registry (here on SQLite) holds it as production when the event is handled. A forged or
stale event naming a candidate, a refused or an archived version is dead-lettered with the reason,
counted, and the model in use stays."""

from __future__ import annotations

import pytest
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.streams import MODELS_PROMOTED, SIGNAL_TL, dlq
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.history import load_bars
from tm_common.metrics import ServiceMetrics
from tm_common.models.cache import NotProduction
from tm_common.models.registry import ModelRegistry
from tm_signal.app import build_handler
from tm_signal.config import SignalSettings
from tm_signal.models import SignalModels
from tm_signal.testing import signal_bundle

from .conftest import promoted_env, publish_lockstep

START = 5000


@pytest.fixture
async def registry(tmp_path):
    db_url = f"sqlite+aiosqlite:///{tmp_path}/tm.db"
    await migrate_async(db_url)
    engine = make_engine(db_url)
    reg = ModelRegistry(engine)
    first = load_bars("BTCUSDT")[START - 250].open_time_ms
    for v in ("p1", "c2", "c3"):
        await reg.register("signal", v, signal_bundle(v, first_bar_ms=first, seed=len(v)),
                           data_hash="t", features=[], params={}, seed=0, metrics={})
    await reg.promote("p1", "initial")
    yield reg
    await engine.dispose()


async def test_the_cache_activates_only_what_the_registry_holds_as_production(registry):
    models = SignalModels(registry)
    with pytest.raises(NotProduction, match="'c2' is candidate in the registry, not production"):
        await models.promoted("c2")
    await registry.promote("c2", "test")
    assert (await models.promoted("c2")).version == "c2"
    await registry.rollback("signal", "test: back to p1")          # c2 is archived now
    with pytest.raises(NotProduction, match="is archived"):
        await models.promoted("c2")
    assert await models.promoted("nope") is None


async def test_a_forged_promotion_is_dead_lettered_and_the_model_stays(registry):
    bus = InMemoryBus()
    settings = SignalSettings.from_values(db_enabled=False)
    metrics = ServiceMetrics("signal", "t")
    h = build_handler(settings, metrics, registry)
    c = Consumer(bus, h, group="signal", consumer="s", streams=["md.bar", "md.dvol", "md.funding",
                                                               MODELS_PROMOTED])
    await publish_lockstep(bus, START, 2, consumer=c)
    await bus.publish(MODELS_PROMOTED, promoted_env("c3"))      # forged: c3 is a candidate
    await c.run_until_idle()
    await publish_lockstep(bus, START + 2, 1, consumer=c)
    dead = await bus.entries(dlq(MODELS_PROMOTED))
    assert len(dead) == 1 and "not production" in dead[0][1]["dlq_reason"]
    sigs = [e for _, e in await bus.entries(SIGNAL_TL)]
    assert len(sigs) == 9 and all('"model_version":"p1"' in e["body"] for e in sigs)
    assert h.metrics.reloads.labels("not_production")._value.get() == 1
