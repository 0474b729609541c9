"""Risk's handler on the in-memory bus with the real consumer loop (state saved with acks): the
rig this folder's tests drive (import it with ``from .conftest import ...``)."""

from __future__ import annotations

from tm_common.bus import Consumer, InMemoryBus
from tm_common.events import Envelope
from tm_risk.handler import RiskHandler
from tm_risk.testing import make_params

STATE_KEY = "tm:state:risk"


class BusRig:
    """One bus, one risk consumer reading ``streams``; ``restart()`` replaces handler and consumer
    (state from bus)."""

    def __init__(self, streams, params=None) -> None:
        self.streams = list(streams)
        self.params = params or make_params()
        self.bus = InMemoryBus()
        self.restart()

    def restart(self) -> None:
        self.handler = RiskHandler(self.params)
        self.consumer = Consumer(self.bus, self.handler, group="risk", consumer="risk-0",
                                 streams=self.streams, state_key=STATE_KEY)

    async def send(self, stream: str, *envs: Envelope) -> None:
        """Publish each envelope and let the consumer handle everything before the next."""
        for e in envs:
            await self.bus.publish(stream, e)
            await self.consumer.run_until_idle()

    async def out(self, stream: str) -> list[Envelope]:
        return [Envelope.from_fields(f) for _, f in await self.bus.entries(stream, 10**6)]

    async def bodies(self, stream: str) -> list:
        return [e.body for e in await self.out(stream)]


__all__ = ["STATE_KEY", "BusRig"]
