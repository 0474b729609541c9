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


class _Bodies:
    """A read-only attribute of :class:`RunRecord`: the bodies of the events of one type on one
    stream, oldest first."""

    def __init__(self, stream: str, etype: str) -> None:
        self.stream, self.etype = stream, etype

    def __get__(self, rec: RunRecord, owner: type | None = None) -> list[Any]:
        return rec.bodies(self.stream, self.etype)


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

    def from_bar(self, open_ms: int) -> RunRecord:
        """The part of the run about bars opening at or after ``open_ms``: each event whose body
        names a bar (``bar_time_ms``, a bar's ``open_time_ms``) is kept when that bar is; an
        event about no bar is kept."""
        def kept(env: Envelope) -> bool:
            t = getattr(env.body, "bar_time_ms", getattr(env.body, "open_time_ms", None))
            return t is None or t >= open_ms
        return RunRecord({s: [e for e in envs if kept(e)] for s, envs in self.streams.items()},
                         dict(self.dead_letters))

    def of(self, stream: str, etype: str | None = None) -> list[Envelope]:
        return [e for e in self.streams.get(stream, []) if etype is None or e.type == etype]

    def bodies(self, stream: str, etype: str) -> list[Any]:
        return [e.body for e in self.of(stream, etype)]

    # The bodies of one event type on one stream, by what the report calls them.
    bars = _Bodies(MD_BAR, "bar.closed")
    signals = _Bodies(SIGNAL_TL, "signal.generated")
    regimes = _Bodies(REGIME_STATE, "regime.detected")
    sized = _Bodies(SIZING_TARGET, "position.sized")
    orders = _Bodies(RISK_ORDER, "order.approved")
    breaker = _Bodies(RISK_BREAKER, "breaker.state_changed")
    reports = _Bodies(EXEC_REPORT, "order.reported")
    fills = _Bodies(EXEC_REPORT, "order.filled")
    funding = _Bodies(EXEC_REPORT, "funding.settled")
    snapshots = _Bodies(PORTFOLIO_SNAPSHOT, "portfolio.snapshotted")

    @property
    def executions(self) -> list[Any]:
        """Fills and funding payments in the order the executor recorded them (the order the
        portfolio accounted them): what the trade list is derived from."""
        return [e.body for e in self.of(EXEC_REPORT)
                if e.type in ("order.filled", "funding.settled")]

    def last_marks(self) -> dict[str, Decimal]:
        """Instrument → the mark price of the last snapshot that held it, else the last bar's
        close: where a trade still open at the end of the run is valued."""
        marks = {b.instrument: b.close for b in self.bars}
        for s in self.snapshots:
            marks.update({p.instrument: p.mark_price for p in s.positions})
        return marks

    @property
    def rejections(self) -> list[Any]:
        """Risk's rejections, then the venue's (both ``order.rejected``)."""
        return self.bodies(RISK_REJECTION, "order.rejected") + \
            self.bodies(EXEC_REPORT, "order.rejected")

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
