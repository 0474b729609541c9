"""``first_handling()``, as the consumer marks it: True only on the first call of an entry's first
delivery. Every way an entry comes back (a crash before its commit, an in-process retry, a batch
undone by a later entry's failure, a reclaim by another consumer) is marked not first, so a
handler that skips its "did I do this already?" check on a first handling (the executor's
lookup before sending an order) never skips it when an earlier handling may have acted."""

from __future__ import annotations

import pytest
from tm_common.bus import InMemoryBus
from tm_common.bus.handling import first_handling
from tm_common.errors import TransientError
from tm_common.testing.counting import CountingHandler
from tm_common.testing.factories import bar_event

from .conftest import Crash, consumer, publish


class Recording(CountingHandler):
    """Records (bar index, first_handling()) per call; ``fail`` maps a bar index to what its
    first call raises."""

    def __init__(self, fail: dict[int, BaseException] | None = None) -> None:
        super().__init__()
        self.seen: list[tuple[int, bool]] = []
        self.fail = dict(fail or {})

    async def handle(self, event):
        i = event.body.open_time_ms // (4 * 3600 * 1000) - bar_event("BTCUSDT", 0).body.open_time_ms \
            // (4 * 3600 * 1000)
        self.seen.append((i, first_handling()))
        if i in self.fail:
            raise self.fail.pop(i)
        return await super().handle(event)


async def test_only_the_first_call_of_a_first_delivery_is_first():
    bus = InMemoryBus()
    await publish(bus, 3)
    h = Recording(fail={1: TransientError("venue busy")})
    await consumer(bus, h).run_until_idle()
    assert h.seen == [(0, True), (1, True), (1, False), (2, True)]
    assert first_handling() is False            # outside a consumer: the safe answer


async def test_an_entry_back_after_a_crash_is_not_first():
    bus = InMemoryBus()
    await publish(bus, 2)
    h = Recording(fail={1: Crash()})
    with pytest.raises(Crash):
        await consumer(bus, h).run_until_idle()
    h2 = Recording()
    await consumer(bus, h2).run_until_idle()    # the restarted process drains its pending entry
    assert h.seen == [(0, True), (1, True)] and h2.seen == [(1, False)]


async def test_a_batch_undone_by_a_later_entrys_failure_is_handled_again_as_not_first():
    bus = InMemoryBus()
    await publish(bus, 3)
    h = Recording(fail={2: RuntimeError("bug")})
    await consumer(bus, h, commit_batch=16).run_until_idle()
    assert h.seen[:3] == [(0, True), (1, True), (2, True)]
    assert all(not first for _, first in h.seen[3:]) and {i for i, _ in h.seen[3:]} == {0, 1, 2}


async def test_an_entry_reclaimed_from_a_dead_consumer_is_not_first():
    now = [0.0]
    bus = InMemoryBus(clock=lambda: now[0])
    await publish(bus, 1)
    await bus.ensure_group("in", "g")
    await bus.read("g", "dead", ["in"], pending=False, count=1, block_ms=0)  # then it died
    now[0] = 60.0
    h = Recording()
    c = consumer(bus, h, name="c2", reclaim_idle_ms=1_000, fence=False)
    await c.start()
    await c._maybe_reclaim()
    await c.run_until_idle()
    assert h.seen == [(0, False)]
