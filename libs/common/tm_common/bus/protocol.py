"""The bus protocol: what a transport provides to the consumer loop and to publishers.

A transport stores and delivers raw entries; decoding, handling, retries and dead-lettering are
done once, transport-agnostically, in :mod:`tm_common.bus.consumer`. That is what makes the same
handler give the same outputs on ``InMemoryBus`` and ``RedisStreamsBus``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tm_common.errors import LostOwnership, TransientError, WriterSuperseded
from tm_common.events.base import Envelope

__all__ = ["Bus", "DeadLetter", "Delivery", "Fence", "GroupMissing", "LostOwnership", "Output",
           "TransportError", "WriterSuperseded"]

Fence = tuple[str, int]
"""``(generation key, generation)``: the writer generation a stateful consumer took at start
(:meth:`Bus.acquire_generation`). A commit carrying it lands only while no newer generation of
the key exists; otherwise :class:`WriterSuperseded` is raised and nothing is written."""


@dataclass(frozen=True)
class Delivery:
    """One entry delivered to a consumer. ``deliveries`` counts this delivery (1 = first)."""

    stream: str               # logical name
    entry_id: str
    fields: Mapping[Any, Any]   # str or bytes keys/values, as the transport stores them
    deliveries: int
    # The published envelope itself, where the transport keeps it (the in-process backtest's
    # bus, :class:`~tm_common.bus.memory.InMemoryBus` with ``pass_envelopes``): the consumer
    # then skips decoding ``fields``.
    envelope: Envelope | None = None


@dataclass(frozen=True)
class Output:
    """An event to publish to a logical stream as part of a commit."""

    stream: str
    envelope: Envelope


@dataclass(frozen=True)
class DeadLetter:
    """An entry moved to ``<stream>.dlq`` with the reason."""

    stream: str
    entry_id: str
    reason: str
    fields: Mapping[str, str] = field(default_factory=dict)


class TransportError(TransientError):
    """The transport is unreachable or failed mid-operation (e.g. Redis restarting)."""


class GroupMissing(TransportError):
    """The stream or consumer group vanished (Redis restarted without its data, key deleted):
    the consumer re-creates its groups and carries on."""


class Bus(Protocol):
    """A transport: streams with consumer groups, atomic commit and dead-lettering."""

    async def publish(self, stream: str, envelope: Envelope) -> str:
        """Append one event; returns the entry id."""

    async def publish_many(self, outputs: Sequence[Output],
                           state: tuple[str, bytes] | None = None, *,
                           expect: bytes | None = None) -> list[str]:
        """Append several events and save ``state`` (key, bytes) atomically (all or none).
        Sources (ingest) use the state to remember what they published, exactly once.

        ``expect`` (with ``state``): publish only if the saved state is still these bytes
        (``b""``: none saved), else raise :class:`~tm_common.errors.StateChanged` and write
        nothing, so two instances of a source never publish the same thing twice."""

    async def ensure_group(self, stream: str, group: str) -> None:
        """Create ``group`` on ``stream`` (from the beginning) if it does not exist."""

    async def read(self, group: str, consumer: str, streams: Sequence[str], *, pending: bool,
                   count: int, block_ms: int) -> list[Delivery]:
        """New entries (``pending=False``), or this consumer's own pending ones (``True``)."""

    async def commit(self, group: str, consumer: str, delivery: Delivery,
                     outputs: Sequence[Output], state: tuple[str, bytes] | None = None,
                     fence: Fence | None = None) -> None:
        """Publish ``outputs``, save ``state`` (key, bytes) and ack ``delivery`` atomically.
        Writes nothing and raises :class:`WriterSuperseded` if ``fence``'s key holds a newer
        generation than ``fence``'s (checked first), or :class:`LostOwnership` if the entry is
        no longer pending for ``consumer``."""

    async def commit_many(self, group: str, consumer: str,
                          items: Sequence[tuple[Delivery, Sequence[Output]]],
                          state: tuple[str, bytes] | None = None,
                          fence: Fence | None = None) -> None:
        """:meth:`commit` of several deliveries at once (a read batch): every item's outputs in
        order, ``state`` once, every ack, atomically. Writes nothing if any delivery is no
        longer pending for ``consumer`` (:class:`LostOwnership`) or ``fence`` is stale."""

    async def dead_letter(self, group: str, consumer: str, delivery: Delivery,
                          reason: str, fence: Fence | None = None) -> None:
        """Copy the entry to ``<stream>.dlq`` with ``reason`` and ack it, atomically; fenced
        and owned as :meth:`commit`."""

    async def acquire_generation(self, key: str) -> int:
        """Take the next writer generation of ``key`` (1, 2, ...; ``INCR``): from now on a
        commit fenced with an older generation of ``key`` is refused."""

    async def confirm_generation(self, key: str, generation: int) -> int | None:
        """``None`` while ``generation`` is still the newest of ``key``; else the newer one.
        A missing or lower value (Redis lost it) is set back to ``generation``."""

    async def take_over(self, group: str, consumer: str, streams: Sequence[str]) -> int:
        """Make ``consumer`` the owner of every entry pending in ``group`` on ``streams``
        (whoever held it), without counting a delivery; returns how many it took. What the
        writer of a group does at start, once it has taken the group's generation."""

    async def reclaim(self, group: str, consumer: str, streams: Sequence[str],
                      min_idle_ms: int, count: int = 100) -> int:
        """Take over entries idle for ``min_idle_ms`` on any consumer; returns how many."""

    async def load_state(self, key: str) -> bytes | None:
        """Handler state saved by :meth:`commit`."""

    async def group_info(self, stream: str) -> list[dict[str, Any]]:
        """Per group: name, consumers, pending, lag (entries not yet delivered)."""

    async def length(self, stream: str) -> int:
        """Number of entries in the stream."""

    async def entries(self, stream: str, count: int = 10_000) -> list[tuple[str, dict[str, str]]]:
        """The stream's entries, oldest first (for tools and tests)."""

    async def ping(self) -> bool:
        """True when the transport is reachable."""

    async def close(self) -> None:
        """Release connections."""
