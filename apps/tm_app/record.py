"""A run's events, read back from the bus: the same reader for the mesh (Redis) and the
in-process backtest (in-memory), so that the report and the parity check see both the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tm_common.bus import Bus
from tm_common.bus.streams import (
    ALL_STREAMS,
    EXEC_REPORT,
    MD_BAR,
    PORTFOLIO_SNAPSHOT,
    REGIME_STATE,
    RISK_BREAKER,
    RISK_ORDER,
    RISK_REJECTION,
    SIGNAL_TL,
    SIZING_TARGET,
    dlq,
)
from tm_common.errors import MalformedEvent
from tm_common.events import Envelope


@dataclass
class RunRecord:
    """Every event of a run by stream (decoded envelopes, oldest first)."""

    streams: dict[str, list[Envelope]] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def from_bus(cls, bus: Bus, streams=ALL_STREAMS, limit: int = 10_000_000) -> RunRecord:
        rec = cls()
        for s in streams:
            envs = []
            for _, fields in await bus.entries(s, limit):
                try:
                    envs.append(Envelope.from_fields(fields))
                except MalformedEvent:
                    continue
            rec.streams[s] = envs
            rec.dead_letters[s] = await bus.length(dlq(s))
        return rec

    def of(self, stream: str, etype: str | None = None) -> list[Envelope]:
        return [e for e in self.streams.get(stream, []) if etype is None or e.type == etype]

    @property
    def bars(self):
        return [e.body for e in self.of(MD_BAR, "bar.closed")]

    @property
    def signals(self):
        return [e.body for e in self.of(SIGNAL_TL, "signal.generated")]

    @property
    def regimes(self):
        return [e.body for e in self.of(REGIME_STATE, "regime.detected")]

    @property
    def sized(self):
        return [e.body for e in self.of(SIZING_TARGET, "position.sized")]

    @property
    def orders(self):
        return [e.body for e in self.of(RISK_ORDER, "order.approved")]

    @property
    def rejections(self):
        return [e.body for e in self.of(RISK_REJECTION, "order.rejected")] + \
            [e.body for e in self.of(EXEC_REPORT, "order.rejected")]

    @property
    def breaker(self):
        return [e.body for e in self.of(RISK_BREAKER, "breaker.state_changed")]

    @property
    def reports(self):
        return [e.body for e in self.of(EXEC_REPORT, "order.reported")]

    @property
    def fills(self):
        return [e.body for e in self.of(EXEC_REPORT, "order.filled")]

    @property
    def funding(self):
        return [e.body for e in self.of(EXEC_REPORT, "funding.settled")]

    @property
    def snapshots(self):
        return [e.body for e in self.of(PORTFOLIO_SNAPSHOT, "portfolio.snapshotted")]

    def trading_view(self) -> dict[str, Any]:
        """What must be identical between a mesh replay and the backtest: orders, fills and
        equity, exact decimals as strings, ids included (they are deterministic)."""
        return {
            "orders": [(o.intent_id, o.instrument, o.bar_time_ms, o.side, str(o.qty), o.reduce_only)
                       for o in self.orders],
            "fills": [(f.order_link_id, f.exec_id, f.instrument, f.side, str(f.qty), str(f.price),
                       str(f.fee)) for f in self.fills],
            "equity": [(s.bar_time_ms, str(s.equity)) for s in self.snapshots],
            "tiers": [(z.instrument, z.bar_time_ms, z.tier) for z in self.sized],
            "regimes": [(r.instrument, r.bar_time_ms, r.label) for r in self.regimes],
        }

    def latencies_ms(self) -> dict[str, list[float]]:
        """Per hop: ms from the bar's publication (ts_init of the root bar) to each downstream
        event of the same chain (correlation id), measured by the events' own ts_init stamps."""
        bar_ts = {e.correlation_id: e.ts_init_ns for e in self.of(MD_BAR, "bar.closed")}
        out: dict[str, list[float]] = {}
        for stream, etype, name in ((REGIME_STATE, None, "bar→regime"), (SIGNAL_TL, None, "bar→signal"),
                                    (SIZING_TARGET, None, "bar→sized"), (RISK_ORDER, None, "bar→order approved"),
                                    (EXEC_REPORT, "order.reported", "bar→order acknowledged"),
                                    (EXEC_REPORT, "order.filled", "bar→fill")):
            vals = [(e.ts_init_ns - bar_ts[e.correlation_id]) / 1e6 for e in self.of(stream, etype)
                    if e.correlation_id in bar_ts]
            out[name] = vals
        return out


def to_float(x: Decimal | float | None) -> float:
    return float(x) if x is not None else float("nan")
