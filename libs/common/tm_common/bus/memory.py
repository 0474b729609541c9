"""In-process transport with the same semantics as Redis Streams consumer groups.

Used by component tests and the in-process backtest. Entries get monotonically increasing ids
``<n>-0``; each group has a last-delivered position, a pending-entries list with owner, delivery
count and last-delivery time, exactly like XREADGROUP/XACK/XAUTOCLAIM.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tm_common.bus.protocol import Delivery, Fence, LostOwnership, Output, WriterSuperseded
from tm_common.bus.signing import NO_KEYS, KeyRing
from tm_common.bus.streams import dlq
from tm_common.errors import StateChanged
from tm_common.events.base import Envelope


@dataclass
class _Pending:
    owner: str
    deliveries: int
    delivered_at: float


@dataclass
class _Group:
    last_delivered: int = 0          # sequence number of the last entry delivered
    pending: dict[int, _Pending] = field(default_factory=dict)
    consumers: set[str] = field(default_factory=set)


class _LazyFields(Mapping[str, Any]):
    """The fields of an entry published as an envelope on a bus that passes envelopes: encoded
    (and signed) only when someone reads them, once."""

    __slots__ = ("_keys", "_stream", "_envelope", "_fields")

    def __init__(self, keys: KeyRing, stream: str, envelope: Envelope) -> None:
        self._keys, self._stream, self._envelope = keys, stream, envelope
        self._fields: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = self._keys.fields(self._stream, self._envelope)
        return self._fields

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


@dataclass
class _Stream:
    entries: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    envelopes: dict[int, Envelope] = field(default_factory=dict)   # with pass_envelopes
    groups: dict[str, _Group] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)    # entry ids in order (appended ascending)

    def after(self, seq: int) -> list[int]:
        """Ids greater than ``seq``, in order: a bisection, not a scan of the whole stream."""
        return self.seqs[bisect.bisect_right(self.seqs, seq):]


class InMemoryBus:
    """The :class:`~tm_common.bus.protocol.Bus` protocol in memory (one event loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 keys: KeyRing | None = None, pass_envelopes: bool = False) -> None:
        """``keys``: signing keys, as :class:`~tm_common.bus.redis.RedisStreamsBus`'s (one
        in-memory bus serves every service of the backtest: it holds the run's keys).
        ``pass_envelopes``: deliver a published envelope as itself (``Delivery.envelope``) and
        encode its fields only when read: the in-process backtest, where the JSON round trip
        of every event was work for nothing (consumers still check its numbers)."""
        self.keys = keys or NO_KEYS
        self.pass_envelopes = pass_envelopes
        self._streams: dict[str, _Stream] = {}
        self._state: dict[str, bytes] = {}
        self._generations: dict[str, int] = {}
        self._seq = 0
        self._clock = clock
        self._new = asyncio.Condition()

    def _s(self, stream: str) -> _Stream:
        return self._streams.setdefault(stream, _Stream())

    def _add(self, stream: str, fields: Mapping[str, Any]) -> str:
        self._seq += 1
        st = self._s(stream)
        st.entries[self._seq] = dict(fields)
        st.seqs.append(self._seq)
        return f"{self._seq}-0"

    def _add_envelope(self, stream: str, envelope: Envelope) -> str:
        if not self.pass_envelopes:
            return self._add(stream, self.keys.fields(stream, envelope))
        self._seq += 1
        st = self._s(stream)
        st.entries[self._seq] = _LazyFields(self.keys, stream, envelope)
        st.envelopes[self._seq] = envelope
        st.seqs.append(self._seq)
        return f"{self._seq}-0"

    async def _notify(self) -> None:
        async with self._new:
            self._new.notify_all()

    async def publish(self, stream: str, envelope: Envelope) -> str:
        eid = self._add_envelope(stream, envelope)
        await self._notify()
        return eid

    async def publish_many(self, outputs: Sequence[Output],
                           state: tuple[str, bytes] | None = None, *,
                           expect: bytes | None = None) -> list[str]:
        if state is not None and expect is not None and self._state.get(state[0], b"") != expect:
            raise StateChanged(state[0])
        ids = [self._add_envelope(o.stream, o.envelope) for o in outputs]
        if state is not None:
            self._state[state[0]] = state[1]
        await self._notify()
        return ids

    async def publish_raw(self, stream: str, fields: dict[str, Any]) -> str:
        """Append arbitrary fields (tests inject malformed entries this way)."""
        eid = self._add(stream, fields)
        await self._notify()
        return eid

    async def ensure_group(self, stream: str, group: str) -> None:
        self._s(stream).groups.setdefault(group, _Group())

    async def read(self, group: str, consumer: str, streams: Sequence[str], *, pending: bool,
                   count: int, block_ms: int) -> list[Delivery]:
        out = self._collect(group, consumer, streams, pending, count)
        if out or pending or block_ms <= 0:
            return out
        try:
            async with self._new:
                await asyncio.wait_for(self._new.wait(), timeout=block_ms / 1000)
        except TimeoutError:
            return []
        return self._collect(group, consumer, streams, pending, count)

    def _collect(self, group: str, consumer: str, streams: Sequence[str], pending: bool,
                 count: int) -> list[Delivery]:
        now = self._clock()
        out: list[Delivery] = []
        for name in streams:
            s = self._s(name)
            g = s.groups[group]
            g.consumers.add(consumer)
            if pending:
                seqs = sorted(q for q, p in g.pending.items() if p.owner == consumer)
            else:
                seqs = s.after(g.last_delivered)
            for q in seqs[: count - len(out)]:
                if q not in s.entries:          # trimmed while pending: XREADGROUP gives nil
                    g.pending.pop(q, None)
                    continue
                p = g.pending.get(q)
                if p is None:
                    p = g.pending[q] = _Pending(consumer, 0, now)
                    g.last_delivered = max(g.last_delivered, q)
                p.deliveries += 1
                p.delivered_at = now
                env = s.envelopes.get(q)
                fields = s.entries[q]
                out.append(Delivery(name, f"{q}-0", fields if env is not None else dict(fields),
                                    p.deliveries, env))
            if len(out) >= count:
                break
        return out

    def _owned(self, group: str, consumer: str, d: Delivery, fence: Fence | None) -> _Group:
        """The checks of Redis' commit script, in its order: the fence, then ownership; then
        the fence's generation is set back if it was lost or lower (it only grows)."""
        if fence is not None:
            current = self._generations.get(fence[0])
            if current is not None and current > fence[1]:
                raise WriterSuperseded(group, fence[1], current)
        g = self._s(d.stream).groups[group]
        p = g.pending.get(int(d.entry_id.split("-")[0]))
        if p is None or p.owner != consumer:
            raise LostOwnership(d.entry_id)
        if fence is not None:
            self._generations[fence[0]] = fence[1]
        return g

    async def commit(self, group: str, consumer: str, delivery: Delivery,
                     outputs: Sequence[Output], state: tuple[str, bytes] | None = None,
                     fence: Fence | None = None) -> None:
        g = self._owned(group, consumer, delivery, fence)
        for o in outputs:
            self._add_envelope(o.stream, o.envelope)
        if state is not None:
            self._state[state[0]] = state[1]
        g.pending.pop(int(delivery.entry_id.split("-")[0]))
        if outputs:
            await self._notify()

    async def commit_many(self, group: str, consumer: str,
                          items: Sequence[tuple[Delivery, Sequence[Output]]],
                          state: tuple[str, bytes] | None = None,
                          fence: Fence | None = None) -> None:
        if fence is not None:
            current = self._generations.get(fence[0])
            if current is not None and current > fence[1]:
                raise WriterSuperseded(group, fence[1], current)
        for d, _ in items:                      # every check before any write, as the script
            self._owned(group, consumer, d, None)
        if fence is not None:
            self._generations[fence[0]] = fence[1]
        for d, outputs in items:
            for o in outputs:
                self._add_envelope(o.stream, o.envelope)
            self._s(d.stream).groups[group].pending.pop(int(d.entry_id.split("-")[0]))
        if state is not None:
            self._state[state[0]] = state[1]
        if any(outputs for _, outputs in items):
            await self._notify()

    async def dead_letter(self, group: str, consumer: str, delivery: Delivery, reason: str,
                          fence: Fence | None = None) -> None:
        g = self._owned(group, consumer, delivery, fence)
        self._add(dlq(delivery.stream), dead_letter_fields(delivery, group, reason))
        g.pending.pop(int(delivery.entry_id.split("-")[0]))

    async def reclaim(self, group: str, consumer: str, streams: Sequence[str],
                      min_idle_ms: int, count: int = 100) -> int:
        now, n = self._clock(), 0
        for name in streams:
            g = self._s(name).groups.get(group)
            if g is None:
                continue
            for _q, p in sorted(g.pending.items()):
                if n >= count:
                    return n
                if (now - p.delivered_at) * 1000 >= min_idle_ms:
                    p.owner, p.delivered_at = consumer, now
                    p.deliveries += 1            # XAUTOCLAIM counts a delivery
                    n += 1
        return n

    async def load_state(self, key: str) -> bytes | None:
        return self._state.get(key)

    async def acquire_generation(self, key: str) -> int:
        self._generations[key] = self._generations.get(key, 0) + 1
        return self._generations[key]

    async def confirm_generation(self, key: str, generation: int) -> int | None:
        current = self._generations.get(key)
        if current is not None and current > generation:
            return current
        self._generations[key] = generation
        return None

    async def take_over(self, group: str, consumer: str, streams: Sequence[str]) -> int:
        n = 0
        for name in streams:
            g = self._s(name).groups.get(group)
            for p in (g.pending.values() if g is not None else ()):
                p.owner, p.delivered_at = consumer, self._clock()   # no delivery counted
                n += 1
        return n

    async def group_info(self, stream: str) -> list[dict[str, Any]]:
        s = self._s(stream)
        return [{"name": name, "consumers": len(g.consumers), "pending": len(g.pending),
                 "lag": len(s.after(g.last_delivered))}
                for name, g in sorted(s.groups.items())]

    async def length(self, stream: str) -> int:
        return len(self._s(stream).entries)

    async def entries(self, stream: str, count: int = 10_000) -> list[tuple[str, dict[str, Any]]]:
        s = self._s(stream)
        return [(f"{q}-0", dict(s.entries[q])) for q in s.seqs[:count]]

    def streams(self) -> list[str]:
        return sorted(self._streams)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


# Original fields copied into a DLQ entry. Redis' commit script passes the fields to XADD with
# Lua's ``unpack``, which takes about 8000 values at most: an entry with more fields (garbage, or
# an attack) would make every dead-letter attempt fail and the consumer retry it forever.
MAX_DLQ_FIELDS = 1000


def dead_letter_fields(d: Delivery, group: str, reason: str) -> dict[Any, Any]:
    """The DLQ entry: the original fields untouched plus ``dlq_*`` fields saying why.

    An entry with more than :data:`MAX_DLQ_FIELDS` fields keeps its first ones and
    ``dlq_fields_dropped`` says how many were left out."""
    items = list(d.fields.items())
    out: dict[Any, Any] = dict(items[:MAX_DLQ_FIELDS])
    if len(items) > MAX_DLQ_FIELDS:
        out["dlq_fields_dropped"] = str(len(items) - MAX_DLQ_FIELDS)
    out.update({"dlq_reason": reason[:2000], "dlq_stream": d.stream, "dlq_entry_id": d.entry_id,
                "dlq_group": group, "dlq_deliveries": str(d.deliveries)})
    return out
