"""What the executor reads and writes on Redis besides its consumer's commits.

- observations (fills and order states seen by the WebSocket or the poller) → ``exec.venue``,
  as root events whose ids derive from the venue ids (the same fill seen twice has one id);
- reconciliation differences → ``exec.report`` (``PositionReconciled``, ``BalanceReconciled``);
- the portfolio's view: the newest ``PortfolioSnapshotted`` on ``portfolio.snapshot``, and the
  newest position-changing entry (fill or reconciliation) on ``exec.report``, read newest-first
  with ``XREVRANGE``;
- its keys beside the consumer's state (``{namespace}state:{group}:...``): the ``orderLinkId``
  salt of each account (created once, ``SET NX``: :mod:`tm_executor.domain.ids`) and the end
  of an IP-ban silence (wall-clock ms, so that a restart stays silent).

The executor owns no table: the venue is the record of its orders (see ``placement``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tm_common.bus import Bus
from tm_common.bus.streams import EXEC_REPORT, PORTFOLIO_SNAPSHOT
from tm_common.errors import MalformedEvent
from tm_common.events import Envelope, EventBody, FundingSettled, PortfolioSnapshotted

from tm_executor.config import EXEC_VENUE

POSITION_CHANGES = ("order.filled", "position.reconciled")
#: What moves the portfolio's cash besides funding: fills and adopted wallet differences.
CASH_CHANGES = ("order.filled", "balance.reconciled")


@dataclass(frozen=True, slots=True)
class CashChanges:
    """What moved the portfolio's cash lately, as :meth:`ExecutorRepository.cash_changes`
    read it: the newest fill or flow (entry id), and the funding settlements published."""

    newest: str | None
    settled: list[tuple[tuple[int, int], FundingSettled]]


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``"<ms>-<seq>"`` as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class ExecutorRepository:
    def __init__(self, bus: Bus, clock_ns=time.time_ns) -> None:
        self.bus, self.clock_ns = bus, clock_ns

    async def observe(self, body: EventBody, *, key: str, correlation_id: str,
                      ts_event_ns: int) -> str:
        """Hand an observation to the handler through ``exec.venue``."""
        env = Envelope.root(body, key=key, correlation_id=correlation_id,
                            ts_event_ns=ts_event_ns, ts_init_ns=self.clock_ns())
        return await self.bus.publish(EXEC_VENUE, env)

    async def report(self, body: EventBody, *, key: str, correlation_id: str) -> str:
        now = self.clock_ns()
        env = Envelope.root(body, key=key, correlation_id=correlation_id, ts_event_ns=now,
                            ts_init_ns=now)
        return await self.bus.publish(EXEC_REPORT, env)

    async def get_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The value at ``key``; created with ``make()`` when absent (``SET NX``: two replicas
        starting together agree on the first one written)."""
        r = getattr(self.bus, "r", None)
        if r is None:                        # the in-memory bus: its state map
            got = await self.bus.load_state(key)
            if got is None:
                await self.bus.publish_many([], state=(key, make().encode()))
                got = await self.bus.load_state(key)
            assert got is not None
            return got.decode()
        await self.bus._call(r.set(key, make(), nx=True))  # type: ignore[attr-defined]
        value = await self.bus._call(r.get(key))  # type: ignore[attr-defined]
        return _s(value)

    async def put(self, key: str, value: str, ttl_s: float | None = None) -> None:
        """Store ``value`` at ``key`` (expiring after ``ttl_s`` on Redis)."""
        r = getattr(self.bus, "r", None)
        if r is None:
            await self.bus.publish_many([], state=(key, value.encode()))
            return
        px = None if ttl_s is None else max(int(ttl_s * 1000), 1)
        await self.bus._call(r.set(key, value, px=px))  # type: ignore[attr-defined]

    async def get(self, key: str) -> str | None:
        got = await self.bus.load_state(key)
        return None if got is None else _s(got)

    async def latest(self, stream: str, types: tuple[str, ...] | None = None,
                     scan: int = 1) -> tuple[str, Envelope] | None:
        """The newest entry of ``stream`` (of one of ``types``, within the newest ``scan``)."""
        for eid, fields in await self._newest(stream, scan):
            etype = fields.get("type")
            if types is not None and etype not in types:
                continue
            try:
                return eid, Envelope.from_fields(fields)
            except MalformedEvent:
                continue
        return None

    async def latest_snapshot(self) -> tuple[str, PortfolioSnapshotted] | None:
        got = await self.latest(PORTFOLIO_SNAPSHOT, ("portfolio.snapshotted",), scan=10)
        if got is None or not isinstance(got[1].body, PortfolioSnapshotted):
            return None
        return got[0], got[1].body

    async def latest_position_change(self, scan: int = 1000) -> str | None:
        """Entry id of the newest fill or reconciliation on ``exec.report`` (None: none)."""
        got = await self.latest(EXEC_REPORT, POSITION_CHANGES, scan=scan)
        return got[0] if got else None

    async def cash_changes(self, since_ms: int, scan: int = 2000) -> CashChanges | None:
        """From one read of the newest ``scan`` entries of ``exec.report``: the entry id of the
        newest fill or adopted wallet difference, and the ``FundingSettled`` entries (entry id
        key, body); None when those entries do not reach back to ``since_ms``."""
        rows = await self._newest(EXEC_REPORT, scan)
        if len(rows) == scan and entry_key(rows[-1][0])[0] > since_ms:
            return None
        newest = next((eid for eid, f in rows if f.get("type") in CASH_CHANGES), None)
        settled = []
        for eid, fields in rows:
            if fields.get("type") != FundingSettled.TYPE:
                continue
            try:
                body = Envelope.from_fields(fields).body
            except MalformedEvent:
                continue
            if isinstance(body, FundingSettled):
                settled.append((entry_key(eid), body))
        return CashChanges(newest, settled)

    async def _newest(self, stream: str, count: int) -> list[tuple[str, dict[str, Any]]]:
        r = getattr(self.bus, "r", None)
        if r is None:                        # the in-memory bus: oldest first, so reverse
            return list(reversed(await self.bus.entries(stream)))[:count]
        rows = await self.bus._call(r.xrevrange(self.bus.key(stream), count=count))  # type: ignore[attr-defined]
        return [(eid.decode(), {_s(k): _s(v) for k, v in f.items()}) for eid, f in rows]


def _s(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)
