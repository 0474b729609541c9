"""Exactly-once publication of bars, DVOL and funding rates; plain publication of intra-bar marks.

The newest published open time per instrument (DVOL day per currency, funding settle time per
instrument) is saved in the same
Redis transaction as the events, so after any crash a bar is published once per
``(instrument, open_time)``: a repeated or late bar is counted, never re-published. Event ids
derive from the natural key, so even a replayed history reproduces the same ids.

Intra-bar marks (``md.mark``) carry no saved state: a mark is a reading, not a fact to count, its
id derives from ``(instrument, at_ms)``, and the portfolio ignores a mark not newer than the last
one it took for the instrument, so one published twice (a crash between publish and the poller's
memory) changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tm_common.bus import Bus, Output
from tm_common.bus.streams import MD_BAR, MD_DVOL, MD_FUNDING, MD_MARK
from tm_common.events import BarClosed, DvolUpdated, Envelope, FundingRateUpdated, MarkUpdated

from tm_ingest.domain.bars import INTERVAL_MS, BarTracker, Decision
from tm_ingest.domain.funding import new_rates


@dataclass
class PublishStats:
    published: int = 0
    duplicates: int = 0
    late: int = 0
    gaps: int = 0
    gap_bars: int = 0
    dvol_published: int = 0
    funding_published: int = 0
    marks_published: int = 0
    last_bar_ms: dict[str, int] = field(default_factory=dict)


def bar_envelope(bar: BarClosed, ts_init_ns: int) -> Envelope:
    key = f"{bar.instrument}:{bar.open_time_ms}"
    return Envelope.root(bar, key=key, correlation_id=key,
                         ts_event_ns=(bar.open_time_ms + INTERVAL_MS) * 1_000_000,
                         ts_init_ns=ts_init_ns)


def dvol_envelope(d: DvolUpdated, ts_init_ns: int) -> Envelope:
    key = f"{d.currency}:{d.day_ms}"
    return Envelope.root(d, key=key, correlation_id=f"DVOL:{key}",
                         ts_event_ns=d.known_at_ms * 1_000_000, ts_init_ns=ts_init_ns)


def funding_envelope(f: FundingRateUpdated, ts_init_ns: int) -> Envelope:
    key = f"{f.instrument}:{f.settle_time_ms}"
    return Envelope.root(f, key=key, correlation_id=f"FUNDING:{key}",
                         ts_event_ns=f.settle_time_ms * 1_000_000, ts_init_ns=ts_init_ns)


def mark_envelope(m: MarkUpdated, ts_init_ns: int) -> Envelope:
    key = f"{m.instrument}:{m.at_ms}"
    return Envelope.root(m, key=key, correlation_id=f"MARK:{key}",
                         ts_event_ns=m.at_ms * 1_000_000, ts_init_ns=ts_init_ns)


class BarPublisher:
    """Publishes bars and DVOL to ``md.bar`` / ``md.dvol`` exactly once."""

    def __init__(self, bus: Bus, state_key: str, *, clock: Callable[[], int] = time.time_ns,
                 on_gap: Callable[[str, int], None] | None = None) -> None:
        self.bus, self.state_key, self.clock = bus, state_key, clock
        self.tracker = BarTracker({})
        self.dvol_last: dict[str, int] = {}
        self.funding_last: dict[str, int] = {}
        self.stats = PublishStats()
        self.on_gap = on_gap or (lambda instrument, n: None)
        self._stale = False     # a publication failed: Redis, not memory, knows if it landed
        # What the last publication of each kind tried to publish ([] until it tries).
        self.attempted: list[BarClosed] = []
        self.attempted_dvol: list[DvolUpdated] = []
        self.attempted_funding: list[FundingRateUpdated] = []

    async def load(self) -> None:
        raw = await self.bus.load_state(self.state_key)
        self._stale = False
        if raw:
            st = json.loads(raw)
            self.tracker.last = {k: int(v) for k, v in st.get("bars", {}).items()}
            self.dvol_last = {k: int(v) for k, v in st.get("dvol", {}).items()}
            self.funding_last = {k: int(v) for k, v in st.get("funding", {}).items()}
        self.stats.last_bar_ms = dict(self.tracker.last)

    def _state(self) -> tuple[str, bytes]:
        return self.state_key, json.dumps({"bars": self.tracker.last, "dvol": self.dvol_last,
                                           "funding": self.funding_last}, sort_keys=True).encode()

    def _marks(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """Copies of the newest published times (bars, DVOL, funding)."""
        return dict(self.tracker.last), dict(self.dvol_last), dict(self.funding_last)

    async def _commit(self, outputs: list[Output],
                      before: tuple[dict[str, int], dict[str, int], dict[str, int]]) -> None:
        """Publish ``outputs`` atomically with the tracker state. On failure the newest
        published times go back to ``before`` (not published: a retry must publish them ...)
        and the saved state is read again before the next publication (... unless the reply was
        lost, not the transaction)."""
        try:
            await self.bus.publish_many(outputs, state=self._state())
        except BaseException:
            self.tracker.last, self.dvol_last, self.funding_last = before
            self._stale = True
            raise

    def last_published(self, instrument: str) -> int | None:
        return self.tracker.last.get(instrument)

    def last_funding_ms(self, instrument: str) -> int | None:
        """Settle time of the newest funding rate published for ``instrument`` (None: none)."""
        return self.funding_last.get(instrument)

    async def publish_bars(self, bars: Sequence[BarClosed]) -> list[BarClosed]:
        """Publish the new bars among ``bars`` (oldest first), atomically with the tracker.
        Returns what was published."""
        self.attempted = []
        await self._reload_if_stale()
        now = self.clock()
        before = self._marks()
        fresh: list[BarClosed] = []
        for b in sorted(bars, key=lambda b: (b.open_time_ms, b.instrument)):
            decision = self.tracker.decide(b)
            if decision is Decision.DUPLICATE:
                self.stats.duplicates += 1
                continue
            if decision is Decision.LATE:
                self.stats.late += 1
                continue
            missing = self.tracker.missing_before(b)
            if missing:
                self.stats.gaps += 1
                self.stats.gap_bars += len(missing)
                self.on_gap(b.instrument, len(missing))
            self.tracker.mark(b)
            fresh.append(b)
        if not fresh:
            return []
        self.attempted = fresh
        await self._commit([Output(MD_BAR, bar_envelope(b, now)) for b in fresh], before)
        self.stats.published += len(fresh)
        self.stats.last_bar_ms = dict(self.tracker.last)
        return fresh

    async def _reload_if_stale(self) -> None:
        """After a failed publication, read the saved state again: a transaction whose reply
        was lost (Redis killed after running it) did publish, and must not publish twice."""
        if self._stale:
            await self.load()

    async def publish_dvol(self, points: Sequence[DvolUpdated]) -> list[DvolUpdated]:
        self.attempted_dvol = []
        await self._reload_if_stale()
        now = self.clock()
        before = self._marks()
        fresh = []
        for d in sorted(points, key=lambda d: d.day_ms):
            if d.day_ms > self.dvol_last.get(d.currency, -1):
                self.dvol_last[d.currency] = d.day_ms
                fresh.append(d)
        if fresh:
            self.attempted_dvol = fresh
            await self._commit([Output(MD_DVOL, dvol_envelope(d, now)) for d in fresh], before)
            self.stats.dvol_published += len(fresh)
        return fresh

    async def publish_funding(self, rates: Sequence[FundingRateUpdated]) -> list[FundingRateUpdated]:
        """Publish the rates settled after the newest one published per instrument (oldest
        first) on ``md.funding``, atomically with the tracker. Returns what was published."""
        self.attempted_funding = []
        await self._reload_if_stale()
        now = self.clock()
        before = self._marks()
        fresh = new_rates(rates, self.funding_last)
        if fresh:
            self.attempted_funding = fresh
            await self._commit([Output(MD_FUNDING, funding_envelope(f, now)) for f in fresh],
                               before)
            self.stats.funding_published += len(fresh)
        return fresh

    async def publish_marks(self, marks: Sequence[MarkUpdated]) -> list[MarkUpdated]:
        """Publish ``marks`` on ``md.mark`` in one transaction (no saved state; see the module
        docstring). Returns them."""
        if not marks:
            return []
        now = self.clock()
        await self.bus.publish_many([Output(MD_MARK, mark_envelope(m, now)) for m in marks])
        self.stats.marks_published += len(marks)
        return list(marks)
