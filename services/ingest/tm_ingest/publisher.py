"""Exactly-once publication of bars, DVOL and funding rates; plain publication of intra-bar marks.

The newest published open time per instrument (DVOL day per currency, funding settle time per
instrument) is saved in the same Redis transaction as the events, so after any crash a bar is
published once per ``(instrument, open_time)``: a repeated or late bar is counted, never
re-published. Event ids derive from the natural key, so even a replayed history reproduces the
same ids.

Several instances (a rollout's old and new pod, a standby) may publish: each publication is
checked against the state this instance last read or wrote (``Bus.publish_many(expect=)``, a
compare and set). When another instance published first, nothing is written; the publisher reads
the saved state again and publishes only what is still new, so each bar is still published once.

Intra-bar marks (``md.mark``) carry no saved state: a mark is a reading, not a fact to count, its
id derives from ``(instrument, at_ms)``, and the portfolio ignores a mark not newer than the last
one it took for the instrument, so one published twice (a crash between publish and the poller's
memory) changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from tm_common.bus import Bus, Output
from tm_common.bus.streams import MD_BAR, MD_DVOL, MD_FUNDING, MD_MARK
from tm_common.errors import StateChanged
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
    state_changes: int = 0      # publications refused: another instance had published first
    last_bar_ms: dict[str, int] = field(default_factory=dict)


log = structlog.get_logger("tm.ingest.publisher")
T = TypeVar("T")
# How often one publication reads the state again after another instance published first
# before it gives up (raises StateChanged; the source retries it as after any failure).
STATE_CHANGE_TRIES = 5


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
                 on_gap: Callable[[str, int], None] | None = None,
                 on_state_change: Callable[[], None] | None = None) -> None:
        self.bus, self.state_key, self.clock = bus, state_key, clock
        self.tracker = BarTracker({})
        self.dvol_last: dict[str, int] = {}
        self.funding_last: dict[str, int] = {}
        self.stats = PublishStats()
        self.on_gap = on_gap or (lambda instrument, n: None)
        self.on_state_change = on_state_change or (lambda: None)
        self._stale = False     # a publication failed: Redis, not memory, knows if it landed
        self._saved_state = b""       # the state as last read or written (b"": none saved)
        # one publication at a time in this process (bars, DVOL and funding come from several
        # tasks): state_changes then counts only other instances' publications
        self._one_at_a_time = asyncio.Lock()
        # What the last publication of each kind tried to publish ([] until it tries).
        self.attempted: list[BarClosed] = []
        self.attempted_dvol: list[DvolUpdated] = []
        self.attempted_funding: list[FundingRateUpdated] = []

    async def load(self) -> None:
        raw = await self.bus.load_state(self.state_key)
        self._stale = False
        self._saved_state = raw or b""    # none saved (Redis lost it): keep what memory knows
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
        """Publish ``outputs`` atomically with the tracker state, if the saved state is still
        the one this instance last read or wrote. On failure the newest published times go back
        to ``before`` (not published: a retry must publish them ...) and the saved state is read
        again before the next publication (... unless the reply was lost, not the transaction,
        or another instance published them)."""
        state = self._state()
        try:
            await self.bus.publish_many(outputs, state=state, expect=self._saved_state)
        except BaseException:
            self.tracker.last, self.dvol_last, self.funding_last = before
            self._stale = True
            raise
        self._saved_state = state[1]

    async def _publish_new(self, plan: Callable[[], list[T]],
                           output: Callable[[T, int], Output]) -> list[T]:
        """Publish what ``plan()`` finds new (it marks it in memory) and return it. When
        another instance published first, ``plan`` runs again on the state read back."""
        async with self._one_at_a_time:
            return await self._publish_new_now(plan, output)

    async def _publish_new_now(self, plan: Callable[[], list[T]],
                               output: Callable[[T, int], Output]) -> list[T]:
        for _ in range(STATE_CHANGE_TRIES):
            await self._reload_if_stale()
            before = self._marks()
            fresh = plan()
            if not fresh:
                return []
            now = self.clock()
            try:
                await self._commit([output(x, now) for x in fresh], before)
            except StateChanged:
                self.stats.state_changes += 1
                self.on_state_change()
                log.info("ingest.another_instance_published", state_key=self.state_key)
                continue
            return fresh
        raise StateChanged(self.state_key)

    def last_published(self, instrument: str) -> int | None:
        return self.tracker.last.get(instrument)

    def last_funding_ms(self, instrument: str) -> int | None:
        """Settle time of the newest funding rate published for ``instrument`` (None: none)."""
        return self.funding_last.get(instrument)

    async def publish_bars(self, bars: Sequence[BarClosed]) -> list[BarClosed]:
        """Publish the new bars among ``bars`` (oldest first), atomically with the tracker.
        Returns what was published; duplicates, late bars and gaps are counted as decided
        against the state the publication landed on."""
        self.attempted = []
        skipped: dict[Decision, int] = {}
        gaps: list[tuple[str, int]] = []

        def plan() -> list[BarClosed]:
            skipped.clear()
            gaps.clear()
            self.attempted = []
            for b in sorted(bars, key=lambda b: (b.open_time_ms, b.instrument)):
                decision = self.tracker.decide(b)
                if decision in (Decision.DUPLICATE, Decision.LATE):
                    skipped[decision] = skipped.get(decision, 0) + 1
                    continue
                missing = self.tracker.missing_before(b)
                if missing:
                    gaps.append((b.instrument, len(missing)))
                self.tracker.mark(b)
                self.attempted.append(b)
            return self.attempted

        fresh = await self._publish_new(plan, lambda b, now: Output(MD_BAR, bar_envelope(b, now)))
        self.stats.duplicates += skipped.get(Decision.DUPLICATE, 0)
        self.stats.late += skipped.get(Decision.LATE, 0)
        for instrument, n in gaps:
            self.stats.gaps += 1
            self.stats.gap_bars += n
            self.on_gap(instrument, n)
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

        def plan() -> list[DvolUpdated]:
            self.attempted_dvol = []
            for d in sorted(points, key=lambda d: d.day_ms):
                if d.day_ms > self.dvol_last.get(d.currency, -1):
                    self.dvol_last[d.currency] = d.day_ms
                    self.attempted_dvol.append(d)
            return self.attempted_dvol

        fresh = await self._publish_new(plan, lambda d, now: Output(MD_DVOL, dvol_envelope(d, now)))
        self.stats.dvol_published += len(fresh)
        return fresh

    async def publish_funding(self, rates: Sequence[FundingRateUpdated]) -> list[FundingRateUpdated]:
        """Publish the rates settled after the newest one published per instrument (oldest
        first) on ``md.funding``, atomically with the tracker. Returns what was published."""
        self.attempted_funding = []

        def plan() -> list[FundingRateUpdated]:
            self.attempted_funding = new_rates(rates, self.funding_last)
            return self.attempted_funding

        fresh = await self._publish_new(
            plan, lambda f, now: Output(MD_FUNDING, funding_envelope(f, now)))
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
