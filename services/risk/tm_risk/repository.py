"""Where the risk state lives. Risk owns no database table: its state (positions it expects,
rolling closes, breaker) is the handler snapshot that the consumer saves in Redis atomically with
every ack (``{namespace}state:{group}``); its decisions are the ``risk.*`` streams, which the
executor and portfolio persist. This repository reads that snapshot back (tools, tests)."""

from __future__ import annotations

from tm_common.bus.protocol import Bus

from tm_risk.domain.state import RiskState


class RiskStateRepository:
    def __init__(self, bus: Bus, key: str) -> None:
        self.bus, self.key = bus, key

    async def load(self) -> RiskState:
        """The last committed state (the initial state when none was saved)."""
        return RiskState.from_json(await self.bus.load_state(self.key))
