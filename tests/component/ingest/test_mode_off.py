"""``TM_MODE=off``: ingest publishes nothing but loads its state and becomes ready (a stack
where bars come from elsewhere still passes its readiness gates)."""

import asyncio

from tm_common.bus import InMemoryBus
from tm_common.bus.streams import MD_BAR
from tm_ingest.config import IngestSettings
from tm_ingest.service import IngestService


async def test_off_mode_is_ready_and_publishes_nothing():
    bus = InMemoryBus()
    svc = IngestService(IngestSettings(mode="off", db_enabled=False), bus, repo=None)
    jobs = svc.background()
    assert set(jobs) == {"state"} and not svc.started
    await asyncio.wait_for(jobs["state"](asyncio.Event()), 5)
    assert svc.started
    assert await bus.length(MD_BAR) == 0
