"""The consumer loop on the in-memory bus: helpers shared by this folder's tests (import them
with ``from .conftest import ...``)."""

from __future__ import annotations

from tm_common.bus import Consumer
from tm_common.testing.factories import bar_event


class Crash(BaseException):
    """Stands for the process dying: not caught by the consumer."""


def consumer(bus, handler, name="c1", **kw):
    """A consumer of group ``g`` on stream ``in`` (state ``state:g``, clock 42, a 1 ms retry
    backoff unless ``retry_backoff_s`` is given)."""
    kw.setdefault("retry_backoff_s", 0.001)
    return Consumer(bus, handler, group="g", consumer=name, streams=["in"],
                    state_key="state:g", clock=lambda: 42, **kw)


async def publish(bus, n, start=0):
    """Bars ``start..start+n-1`` of BTCUSDT on ``in``."""
    for i in range(start, start + n):
        await bus.publish("in", bar_event("BTCUSDT", i))


__all__ = ["Crash", "consumer", "publish"]
