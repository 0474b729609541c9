"""The consumer's lifecycle: its settings, start, stop and undo (the loop: :mod:`tm_common.bus.consumer`).

Start creates the groups, restores the handler's saved state and, for the group's writer, takes
over the group's pending entries; after a transport failure it starts over the same way.
``stop()`` asks the loop to finish the entry in hand; a failure undoes the handler's in-memory
state to the last committed snapshot.

One writer per group. A stateful consumer takes the group's next writer generation at start
(before it loads the state), takes over every entry pending in the group, and commits with that
generation: once a newer instance of the group has started, this one's commits are refused
(:class:`WriterSuperseded`, nothing written) and it stops consuming for good, says so in the log
(``bus.writer_superseded``) and to its observer (metrics, ``/readyz``). After a transport failure
it keeps its generation if still the newest (it does not supersede a newer instance).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from tm_common.bus.handler import Handler, StatefulHandler
from tm_common.bus.observer import ConsumerObserver
from tm_common.bus.protocol import Bus, Fence
from tm_common.bus.signing import NO_KEYS, KeyRing
from tm_common.bus.stages import StageTimes
from tm_common.errors import TradeMatrixError, WriterSuperseded
from tm_common.events.base import Envelope

if TYPE_CHECKING:
    from tm_common.bus.consumer import _Handled

log = structlog.get_logger("tm.bus")


class NoSnapshot(TradeMatrixError, RuntimeError):
    """A handler failed in a consumer that commits no snapshots (:meth:`Consumer.skip_snapshots`):
    the in-memory state cannot be undone, so the run stops here rather than go on from it."""


def generation_key(state_key: str) -> str:
    """The writer-generation key of the group whose state is saved under ``state_key``
    (``{namespace}state:{group}:generation``: same prefix, so the same Redis Cluster slot)."""
    return f"{state_key}:generation"


class ConsumerLifecycle:
    """What a :class:`~tm_common.bus.consumer.Consumer` is between entries: its settings (its
    arguments are documented there), its start, its stop and its undo. The loop that reads,
    handles and commits is :class:`~tm_common.bus.consumer.Consumer`'s."""

    def __init__(self, bus: Bus, handler: Handler, *, group: str, consumer: str,
                 streams: Sequence[str], state_key: str | None = None,
                 clock: Callable[[], int] = time.time_ns, observer: ConsumerObserver | None = None,
                 max_deliveries: int = 5, reclaim_idle_ms: int = 30_000,
                 reclaim_interval_s: float = 5.0, block_ms: int = 500, batch: int = 64,
                 retry_backoff_s: float = 0.05, max_backoff_s: float = 2.0,
                 fence: bool = True, keys: KeyRing | None = None, commit_batch: int = 1,
                 commit_batch_s: float = 0.005) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be >= 1")
        if commit_batch < 1:
            raise ValueError("commit_batch must be >= 1")
        self.commit_batch, self.commit_batch_s = commit_batch, commit_batch_s
        self.bus, self.handler = bus, handler
        self.group, self.consumer, self.streams = group, consumer, tuple(streams)
        self.state_key = state_key if isinstance(handler, StatefulHandler) else None
        self.generation_key = generation_key(self.state_key) if fence and self.state_key else None
        self.generation: int | None = None
        self.superseded: WriterSuperseded | None = None
        self._taken_over = False
        self.clock, self.obs = clock, observer or ConsumerObserver()
        self.keys = keys or NO_KEYS
        self.max_deliveries, self.reclaim_idle_ms = max_deliveries, reclaim_idle_ms
        self.reclaim_interval_s, self.block_ms, self.batch = reclaim_interval_s, block_ms, batch
        self.retry_backoff_s, self.max_backoff_s = retry_backoff_s, max_backoff_s
        self._stopping = asyncio.Event()
        self._pending_dirty = True          # drain own pending entries first
        self._last_state: bytes | None = None
        self._started = False
        self._next_reclaim = 0.0
        self.last_event: Envelope | None = None
        self.handled_count = 0
        self.dead_letter_count = 0
        self.stages = StageTimes()          # the hot path's profile (tm_common/bus/stages.py)
        self._batching = False              # this read's entries are committed together
        self._staged: list[_Handled] = []   # handled, not committed yet (a batch)
        self._batch_undone = False          # a failure undid this read's batch
        self.snapshots = True               # see skip_snapshots

    # -- lifecycle -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish the entry in hand and return."""
        self._stopping.set()

    def skip_snapshots(self) -> None:
        """Commit no handler state from now on (the in-process backtest: nothing there survives
        a crash, so the snapshot per entry is work for nothing). The state is still restored at
        start; a handler failure can then not be undone: it raises :class:`NoSnapshot`."""
        self.snapshots = False

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def start(self) -> None:
        """Create groups, take (or confirm) the writer generation, restore the saved handler
        state and, the first time, take over the group's pending entries (idempotent)."""
        if self._started or self.superseded is not None:
            return
        for s in self.streams:
            await self.bus.ensure_group(s, self.group)
        first = self.generation is None
        if self.generation_key is not None:
            # Before the state is loaded: a commit of an older instance after this point is
            # refused, so the state loaded is the last one any older instance saved.
            if first:
                self.generation = await self.bus.acquire_generation(self.generation_key)
            else:
                assert self.generation is not None
                newer = await self.bus.confirm_generation(self.generation_key, self.generation)
                if newer is not None:
                    self._on_superseded(WriterSuperseded(self.group, self.generation, newer))
                    return
        if self.state_key is not None:
            self._last_state = await self.bus.load_state(self.state_key)
            self.handler.restore(self._last_state)  # type: ignore[attr-defined]
        if self.generation is not None and not self._taken_over:
            # The group's one writer finishes what older instances left pending, first.
            taken = await self.bus.take_over(self.group, self.consumer, self.streams)
            self._pending_dirty, self._taken_over = True, True
            log.info("bus.writer_started", group=self.group, consumer=self.consumer,
                     generation=self.generation, taken_over=taken)
            self.obs.generation(self.group, self.generation)
        self._started = True

    @property
    def fence(self) -> Fence | None:
        """What this consumer's commits carry: ``(generation key, generation)``."""
        if self.generation_key is None or self.generation is None:
            return None
        return self.generation_key, self.generation

    def _on_superseded(self, e: WriterSuperseded) -> None:
        """A newer instance owns the group: stop for good, with the in-memory state undone."""
        first = self.superseded is None
        self.superseded = e
        self._recover()
        self._stopping.set()
        if first:
            log.error("bus.writer_superseded", group=self.group, consumer=self.consumer,
                      generation=e.generation, newer=e.current, error=str(e))
            self.obs.superseded(self.group, e)

    def _recover(self) -> None:
        """Undo in-memory handler state to the last committed snapshot."""
        self._pending_dirty = True
        if self.state_key is not None:
            if not self.snapshots:
                raise NoSnapshot(f"consumer group {self.group!r}: a handler failed in a run that "
                                 "keeps no state snapshots (in-process); its state cannot be undone")
            self.handler.restore(self._last_state)  # type: ignore[attr-defined]

    async def _sleep(self, secs: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=secs)
        except TimeoutError:
            pass
