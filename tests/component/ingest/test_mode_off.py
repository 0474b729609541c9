"""``TM_MODE=off``: ingest publishes nothing but loads its state and becomes ready (a stack
where bars come from elsewhere still passes its readiness gates)."""

import asyncio

from tm_common.bus import InMemoryBus
from tm_common.bus.streams import MD_BAR
from tm_ingest.app import build
from tm_ingest.config import IngestSettings


async def test_off_mode_is_ready_and_publishes_nothing():
    bus = InMemoryBus()
    parts = build(IngestSettings(mode="off", db_enabled=False), bus=bus)
    svc = parts.handlers["service"]
    assert set(parts.background) == {"state"} and not svc.started
    assert not parts.ready_checks["publisher_state"]()
    await asyncio.wait_for(parts.background["state"](asyncio.Event()), 5)
    assert svc.started and parts.ready_checks["publisher_state"]()
    assert await bus.length(MD_BAR) == 0
