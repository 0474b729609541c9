"""Production's market events, read for a shadow book and cut into bar-time batches.

The book reads ``md.dvol``, ``md.funding`` and ``md.bar`` under production's namespace with
``XREAD`` (no consumer group: it is no part of production's delivery and leaves no trace there)
and merges them by entry id, which is their publication order on one Redis server (within one
millisecond, where ids of different streams do not compare, DVOL and funding come before the
bars, as a bar time is published; a read cut at its count is merged only up to what every cut
stream has delivered, so a backlog is merged as a live feed is). A batch is
what production's services saw for one bar time: the DVOL and funding published before that bar
time's bars, then the bars. It is complete when every symbol's bar is in; otherwise it is cut,
partial, when a bar of another bar time arrives (a gap; or a backfill, which publishes one symbol's
bars after the other's) or after ``flush_after_s`` without new events. Either way the events are
applied in the order production's services saw them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tm_common.bus.streams import MD_BAR, MD_DVOL, MD_FUNDING
from tm_common.errors import MalformedEvent
from tm_common.events import BarClosed, Envelope, FundingRateUpdated

MARKET_STREAMS = (MD_DVOL, MD_FUNDING, MD_BAR)


@dataclass
class Batch:
    """The market events of one bar time, in publication order: ``(stream, envelope)``."""

    events: list[tuple[str, Envelope]] = field(default_factory=list)
    bar_time_ms: int | None = None

    @property
    def bars(self) -> list[BarClosed]:
        return [e.body for _, e in self.events if isinstance(e.body, BarClosed)]

    @property
    def funding(self) -> list[FundingRateUpdated]:
        return [e.body for _, e in self.events if isinstance(e.body, FundingRateUpdated)]


@dataclass
class MirrorCounts:
    entries: int = 0
    malformed: int = 0
    skipped: int = 0               # older than from_ms, or a symbol the book does not trade
    batches: int = 0
    partial: int = 0               # cut before every symbol's bar was in (gap, backfill)


#: Within one millisecond, entry ids of different streams do not compare (each stream numbers
#: its own entries from 0): there the order a bar time is published in decides, DVOL and
#: funding before the bars they precede.
_STREAM_RANK = {MD_DVOL: 0, MD_FUNDING: 1, MD_BAR: 2}


def _entry_key(stream: str, entry_id: str) -> tuple[int, int, int]:
    """Publication order across the market streams: (ms, the stream's rank, sequence)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), _STREAM_RANK.get(stream, 3), int(seq or 0)


def _text(v: bytes | str) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else v


class MarketMirror:
    """Cuts production's market streams into :class:`Batch` es (pure but for :meth:`read`).

    ``redis``: a redis-py asyncio client; ``keys``: logical stream → Redis key under production's
    namespace. Entry ids are cursors: the mirror starts at ``"0"`` (the start of what the streams
    hold) and never skips an entry."""

    def __init__(self, redis: Any, keys: dict[str, str], symbols: Sequence[str], *,
                 from_ms: int = 0, flush_after_s: float = 30.0,
                 clock: Any = time.monotonic, read_count: int = 1000) -> None:
        self.redis, self.keys, self.read_count = redis, keys, read_count
        self.symbols = frozenset(symbols)
        self.from_ms, self.flush_after_s, self.clock = from_ms, flush_after_s, clock
        self.cursors = {k: "0" for k in keys.values()}
        self.counts = MirrorCounts()
        self._open = Batch()
        self._last_event_at = clock()

    async def read(self, block_ms: int) -> list[Batch]:
        """Read what is new (waiting up to ``block_ms``); returns the batches now complete."""
        reply = await self.redis.xread(self.cursors, count=self.read_count, block=block_ms)
        rows_by_key = {_text(key): rows for key, rows in reply or []}
        # A stream cut at read_count may have older entries left than another stream's newest
        # returned now: merge only up to the oldest last id of the cut streams, and read the
        # rest again next time, so that the merge is publication order however far behind the
        # book reads (a backlog must not change what it trades).
        by_key = {v: k for k, v in self.keys.items()}
        cut = [_entry_key(by_key[k], _text(rows[-1][0])) for k, rows in rows_by_key.items()
               if len(rows) >= self.read_count]
        limit = min(cut) if cut else None
        entries: list[tuple[str, str, dict[str, str]]] = []
        for k, rows in rows_by_key.items():
            kept = [r for r in rows
                    if limit is None or _entry_key(by_key[k], _text(r[0])) <= limit]
            for eid, raw in kept:
                entries.append((by_key[k], _text(eid), {_text(a): _text(b) for a, b in raw.items()}))
            if kept:
                self.cursors[k] = _text(kept[-1][0])
        entries.sort(key=lambda e: _entry_key(e[0], e[1]))
        return self.feed(entries)

    def feed(self, entries: list[tuple[str, str, dict[str, str]]]) -> list[Batch]:
        """Add ``(stream, entry id, fields)`` in publication order; returns complete batches."""
        done: list[Batch] = []
        if entries:
            self._last_event_at = self.clock()
        for stream, _, fields in entries:
            self.counts.entries += 1
            try:
                env = Envelope.from_fields(fields)
            except MalformedEvent:
                self.counts.malformed += 1            # production dead-letters it; so do we
                continue
            if not self._wanted(env):
                self.counts.skipped += 1
                continue
            body = env.body
            if isinstance(body, BarClosed):
                if self._open.bar_time_ms is not None and body.open_time_ms != self._open.bar_time_ms:
                    done.append(self._cut(complete=False))
                self._open.bar_time_ms = body.open_time_ms
                self._open.events.append((stream, env))
                if {b.instrument for b in self._open.bars} >= self.symbols:
                    done.append(self._cut(complete=True))
            else:
                self._open.events.append((stream, env))
        if (not entries and self._open.bars
                and self.clock() - self._last_event_at >= self.flush_after_s):
            done.append(self._cut(complete=False))
        return done

    def _wanted(self, env: Envelope) -> bool:
        body = env.body
        if isinstance(body, BarClosed):
            return body.instrument in self.symbols and body.open_time_ms >= self.from_ms
        if isinstance(body, FundingRateUpdated):
            return body.instrument in self.symbols
        return True

    def _cut(self, *, complete: bool) -> Batch:
        batch, self._open = self._open, Batch()
        self.counts.batches += 1
        self.counts.partial += not complete
        return batch
