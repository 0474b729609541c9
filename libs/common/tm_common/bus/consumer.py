"""The consumer loop, shared by every transport.

consume → handle → commit (outputs + ack + optional state, atomically). On start it restores the
handler's saved state and drains its own pending entries before reading new ones; a reclaimer takes
over entries idle on dead consumers. Malformed entries and entries over the delivery cap go to the
dead-letter stream atomically with their ack; the loop keeps going. After a transport failure it
starts over the same way (groups, saved state, own pending entries): the saved state, not the one
in memory, is what goes with the acked entries. ``stop()`` finishes the entry in hand and returns;
unhandled entries stay pending and are drained on the next start.

The consumer's settings, start, stop and undo, and the one writer per group (the writer generation
its commits carry), are :mod:`tm_common.bus.lifecycle`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from tm_common.bus.handling import handling
from tm_common.bus.lifecycle import ConsumerLifecycle
from tm_common.bus.protocol import Delivery, Output, TransportError
from tm_common.bus.signing import SIG_FIELD
from tm_common.errors import (
    LostOwnership,
    MalformedEvent,
    PermanentError,
    TransientError,
    WriterSuperseded,
)
from tm_common.events.base import Envelope

log = structlog.get_logger("tm.bus")


class Consumer(ConsumerLifecycle):
    """Runs one handler for one consumer of a group over one or more logical streams.

    ``max_deliveries``: attempts (deliveries + in-process retries) before an entry is
    dead-lettered. ``reclaim_idle_ms``: how long an entry must sit unacked on any consumer before
    this one takes it over (must exceed the slowest handler). ``block_ms``: read block time, which
    also bounds how long ``stop()`` waits for an idle loop. ``fence``: take a writer generation
    (:mod:`tm_common.bus.lifecycle`); default on for a stateful handler with a ``state_key``.
    ``commit_batch``: entries of one read committed together at most (outputs, acks and one
    state snapshot in one commit), while their handling took less than ``commit_batch_s``
    seconds in all (so a batch delays no output by more than that); 1 = one commit per entry.
    A crash loses the uncommitted batch's handling only: its entries come back. ``keys``: the
    signing keys this consumer verifies with: an entry of a stream it holds a key for is
    dead-lettered unless its signature matches, before it is decoded
    (:mod:`tm_common.bus.signing`).
    """

    async def run(self) -> None:
        """Consume until :meth:`stop`. Transport failures are retried with backoff."""
        backoff = self.retry_backoff_s
        while not self.stopping:
            try:
                await self.start()
                await self._maybe_reclaim()
                await self.step(block_ms=self.block_ms)
                backoff = self.retry_backoff_s
            except TransportError as e:
                self.obs.transport_error(e)
                log.warning("bus.transport_error", group=self.group, error=str(e))
                self._recover()
                # Re-create groups (if they vanished) and reload the state from Redis: a commit
                # whose reply was lost (Redis killed after running it) did land, outputs, ack
                # and state together, and the entry will not come back; the state in memory
                # would miss its effect.
                self._started = False
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def run_until_idle(self) -> int:
        """Handle everything available now (own pending, then new), without blocking.
        Returns the number of entries processed. For tests and the in-process backtest."""
        await self.start()
        total = 0
        while not self.stopping:
            n = await self.step(block_ms=None)
            if n == 0 and not self._pending_dirty:
                return total
            total += n
        return total

    # -- one step --------------------------------------------------------------------------
    async def step(self, block_ms: int | None) -> int:
        """Read one batch (own pending first) and process it; returns entries processed.
        A superseded consumer reads nothing (0)."""
        if self.superseded is not None:
            return 0
        batch = []
        st, clock = self.stages, time.perf_counter_ns
        t0 = clock()
        if self._pending_dirty:
            # One at a time: re-reading a pending entry counts a delivery, so a batch read would
            # charge every entry queued behind a poison one and dead-letter innocent entries.
            batch = await self.bus.read(self.group, self.consumer, self.streams, pending=True,
                                        count=1, block_ms=0)
            self._pending_dirty = bool(batch)
        if not batch:
            batch = await self.bus.read(self.group, self.consumer, self.streams, pending=False,
                                        count=self.batch, block_ms=block_ms or 0)
        if batch:
            st.read += clock() - t0
            st.reads += 1
        else:
            st.wait += clock() - t0
        if len(self.streams) > 1:
            # A multi-stream read comes back grouped by stream; handle it in publication order
            # (entry ids grow with time), so a consumer sees its inputs as they were published.
            batch = sorted(batch, key=lambda d: _id_key(d.entry_id))
        # A batch of new entries is committed at once (outputs + acks + one state snapshot in
        # one script): one round trip and one snapshot per read instead of per entry.
        self._batching = self.commit_batch > 1 and len(batch) > 1 and hasattr(self.bus, "commit_many")
        self._batch_undone = False
        done = 0
        try:
            for delivery in batch:
                if self.stopping:
                    break
                processed = await self._process(delivery)
                if not processed:
                    self._pending_dirty = True  # leave the rest pending, keep order
                    break
                done += 1
            if not await self._flush() or self._batch_undone:
                done = 0                    # nothing of this read was committed
        except WriterSuperseded as e:
            self._staged = []
            self._on_superseded(e)
        finally:
            self._batching = False
        return done

    async def _process(self, d: Delivery) -> bool:
        """Handle one delivery to the end (committed or dead-lettered). False = left pending."""
        st, clock = self.stages, time.perf_counter_ns
        st.entries += 1
        t_dec = clock()
        refusal = self.keys.refusal(d.stream, d.fields)
        if refusal is not None:
            # Not decoded, not handled: an entry nobody holding the key wrote (a forgery, or a
            # producer without the key) is dead-lettered with the reason, and counted.
            # Its type is not trusted either: "?" keeps the metric labels bounded.
            if not await self._dead_letter(d, "?", f"{refusal}: no valid {SIG_FIELD} for "
                                           f"{d.stream} (entry {d.entry_id})"):
                return False
            self.obs.signature_refused(d.stream, self.group, refusal)
            return True
        try:
            event = Envelope.from_fields(d.fields) if d.envelope is None else d.envelope.checked()
        except MalformedEvent as e:
            return await self._dead_letter(d, "?", f"malformed: {e}")
        st.decode += clock() - t_dec
        if d.deliveries > self.max_deliveries:
            return await self._dead_letter(
                d, event.type, f"delivery cap {self.max_deliveries} exceeded ({d.deliveries} deliveries)")
        attempt, backoff = d.deliveries, self.retry_backoff_s
        calls = 0                           # handle() calls on this delivery (retries count)
        while True:
            t0 = time.perf_counter()
            try:
                try:
                    # the first call on a first delivery: nobody handled this entry before
                    # (tm_common.bus.handling; a crashed handling's entry comes back counted)
                    with handling(d.deliveries == 1 and calls == 0):
                        calls += 1
                        emits = await self.handler.handle(event)
                except Exception as e:
                    if not self._staged:
                        raise
                    # The state in memory holds the staged entries' effects and this
                    # failure's: undo to the last commit and leave the whole batch pending; the
                    # pending drain handles it again one entry at a time (deterministic
                    # handlers: the same outputs).
                    self._staged, self._batch_undone = [], True
                    self._recover()
                    self.obs.failed(d, e, attempt)
                    return False
            except PermanentError as e:
                self._recover()
                return await self._dead_letter(d, event.type,
                                               f"permanent error: {type(e).__name__}: {e}")
            except TransientError as e:
                self._recover()
                self.obs.failed(d, e, attempt)
                if self.stopping:
                    return False
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            except Exception as e:  # noqa: BLE001 - a handler bug must not kill the consumer
                self._recover()
                self.obs.failed(d, e, attempt)
                log.warning("bus.handler_failed", group=self.group, stream=d.stream, entry=d.entry_id,
                            type=event.type, attempt=attempt, error=f"{type(e).__name__}: {e}",
                            correlation_id=event.correlation_id)
                if attempt >= self.max_deliveries:
                    return await self._dead_letter(
                        d, event.type, f"failed {attempt} attempts; last error: {type(e).__name__}: {e}")
                if self.stopping:
                    return False
                attempt += 1
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            secs = time.perf_counter() - t0
            st.handle += int(secs * 1e9)
            t_enc = clock()
            now = self.clock()
            outputs = [Output(e.stream, event.caused(e.body, index=i, ts_init_ns=now,
                                                     ts_event_ns=e.ts_event_ns,
                                                     correlation_id=e.correlation_id))
                       for i, e in enumerate(emits)]
            st.encode += clock() - t_enc
            self._staged.append(_Handled(d, event, outputs, secs, now))
            if self._batching and len(self._staged) < self.commit_batch and \
                    sum(h.secs for h in self._staged) < self.commit_batch_s:
                return True
            return await self._flush()

    async def _flush(self) -> bool:
        """Commit the staged entries: outputs, acks and one state snapshot, atomically. False
        when the commit was refused for ownership of an entry of a batch (the consumer's state is
        undone to its last commit; its own entries are left pending, handled again in order)."""
        staged, self._staged = self._staged, []
        if not staged:
            return True
        st, clock = self.stages, time.perf_counter_ns
        t_enc = clock()
        state = None
        snap = None
        if self.state_key is not None and self.snapshots:
            snap = self.handler.snapshot()  # type: ignore[attr-defined]
            if snap != self._last_state:
                # Saved only when it changed: the key holds _last_state already (loaded at
                # start, or written by the last commit that landed).
                state = (self.state_key, snap)
        t_com = clock()
        st.encode += t_com - t_enc
        try:
            if len(staged) == 1:
                h = staged[0]
                await self.bus.commit(self.group, self.consumer, h.delivery, h.outputs, state,
                                      self.fence)
            else:
                await self.bus.commit_many(self.group, self.consumer,
                                           [(h.delivery, h.outputs) for h in staged], state,
                                           self.fence)
        except WriterSuperseded:
            raise                           # step() stops the consumer
        except LostOwnership as e:
            self._recover()
            log.info("bus.lost_ownership", group=self.group, entry=str(e), batch=len(staged))
            return len(staged) == 1         # one entry: it is someone else's now, go on
        except BaseException:
            self._recover()
            raise
        st.commit += clock() - t_com
        if state is not None:
            self._last_state = state[1]
            st.state_writes += 1
        elif snap is not None:
            st.state_skips += 1
        for h in staged:
            self.last_event, self.handled_count = h.event, self.handled_count + 1
            self.obs.handled(h.delivery.stream, h.event, h.secs, h.now)
            for o in h.outputs:
                self.obs.published(o.stream, o.envelope)
        return True

    async def _dead_letter(self, d: Delivery, event_type: str, reason: str) -> bool:
        """Dead-letter ``d`` (with its ack). False: left pending, not dead-lettered (the commit
        of the entries this batch handled before it was refused)."""
        if not await self._flush():          # what this batch handled before it, first
            return False
        await self.bus.dead_letter(self.group, self.consumer, d, reason, self.fence)
        self.dead_letter_count += 1
        self.obs.dead_lettered(d.stream, event_type, reason)
        log.warning("bus.dead_lettered", group=self.group, stream=d.stream, entry=d.entry_id,
                    type=event_type, reason=reason)
        return True

    async def _maybe_reclaim(self) -> None:
        now = time.monotonic()
        if now < self._next_reclaim:
            return
        self._next_reclaim = now + self.reclaim_interval_s
        if await self.bus.reclaim(self.group, self.consumer, self.streams, self.reclaim_idle_ms):
            self._pending_dirty = True



@dataclass(frozen=True)
class _Handled:
    """An entry handled and not committed yet: its outputs, handling seconds and commit time."""

    delivery: Delivery
    event: Envelope
    outputs: list[Output]
    secs: float
    now: int


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)