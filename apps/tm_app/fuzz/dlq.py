"""The stream half of the fuzzer: inject malformed entries into a running mesh's streams, wait
for every consumer group, read the dead letters back and check them (see ``fuzz_streams``)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from tm_common.bus.streams import MD_BAR, MD_DVOL, dlq, maxlen

from tm_app.fuzz import entries as fuzz_entries
from tm_app.fuzz import mesh as fuzz_mesh


@dataclass
class StreamReport:
    """What the stream fuzz did and found. ``problems`` empty = passed."""

    injected: dict[str, int] = field(default_factory=dict)            # stream → entries
    groups: dict[str, list[str]] = field(default_factory=dict)        # stream → groups
    dead_lettered: dict[str, dict[str, int]] = field(default_factory=dict)  # stream → group → n
    dlq_entries_added: dict[str, int] = field(default_factory=dict)   # Redis 7 only
    categories: dict[str, int] = field(default_factory=dict)
    redrawn: int = 0
    secs: float = 0.0
    valid_handled: dict[str, int] = field(default_factory=dict)      # service → handled delta
    problems: list[str] = field(default_factory=list)

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    @property
    def total_dead_lettered(self) -> int:
        return sum(sum(g.values()) for g in self.dead_lettered.values())


def _s(v) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


class StreamFuzzer:
    """Injects, waits, reads the dead letters and checks (see the module docstring)."""

    def __init__(self, mesh: fuzz_mesh.Mesh, redis_url: str, *, n: int, chunk: int, seed: int,
                 big_entries: bool = True, stall_s: float = 120.0, trim: bool = True,
                 log=print) -> None:
        self.mesh, self.n, self.chunk, self.seed = mesh, n, chunk, seed
        self.r = aioredis.Redis.from_url(redis_url, decode_responses=False)
        self.big_entries, self.stall_s, self.trim, self.log = big_entries, stall_s, trim, log
        self.ns = mesh.namespace
        self.rep = StreamReport()
        self.ids: dict[str, set[str]] = defaultdict(set)               # stream → injected ids
        self.seen: dict[tuple[str, str], set[str]] = defaultdict(set)  # (stream, group) → ids
        self.cursor: dict[str, str] = {}                               # dlq stream → last id read

    def key(self, stream: str) -> str:
        return self.ns + stream

    # -- redis helpers -------------------------------------------------------------------
    async def _entries_added(self, stream: str) -> int | None:
        try:
            info: dict[Any, Any] = await self.r.xinfo_stream(self.key(stream))
        except ResponseError:
            return 0                                  # no such key yet
        v = info.get("entries-added", info.get(b"entries-added"))
        return None if v is None else int(v)

    async def _last_id(self, stream: str) -> str:
        rows = await self.r.xrevrange(self.key(stream), count=1)
        return _s(rows[0][0]) if rows else "0-0"

    async def busy(self, streams) -> list[str]:
        """Groups with undelivered (lag) or unacknowledged (pending) entries."""
        out = []
        for st in streams:
            try:
                groups = await self.r.xinfo_groups(self.key(st))
            except ResponseError:
                continue
            for g in groups:
                g = {_s(k): v for k, v in g.items()}
                pending, lag = int(g["pending"]), g.get("lag")
                if lag is None:   # Redis 6.2, or unknown after deletions: look for newer entries
                    last = _s(g["last-delivered-id"])
                    lag = len(await self.r.xrange(self.key(st), min=f"({last}", count=1) or [])
                if lag or pending:
                    out.append(f"{st}/{_s(g['name'])} lag={lag} pending={pending}")
        return out

    async def wait_drained(self, streams, what: str) -> float:
        """Until every group on ``streams`` has lag 0 and pending 0. Fails at once when a
        service restarts or a task inside one crashes, and after ``stall_s`` without progress."""
        t0 = last_change = time.monotonic()
        last_busy: list[str] = []
        next_task_check = t0 + 2.0
        while True:
            busy = await self.busy(streams)
            if not busy:
                return time.monotonic() - t0
            now = time.monotonic()
            if busy != last_busy:
                last_busy, last_change = busy, now
            dead = {n: c for n, c in self.mesh.restarts().items() if c}
            if dead:
                raise RuntimeError(f"{what}: service(s) restarted or exited: {dead}")
            if now >= next_task_check:
                next_task_check = now + 5.0
                crashed = {n: c for n, c in self.mesh.task_restarts().items() if c}
                if crashed:
                    why = {n: self.mesh.last_error(n) for n in crashed}
                    raise RuntimeError(f"{what}: tasks crashed inside {crashed}: {why}; "
                                       f"still busy: {busy[:5]}")
            if now - last_change > self.stall_s:
                raise RuntimeError(f"{what}: no progress for {self.stall_s:.0f}s: {busy[:8]}")
            await asyncio.sleep(0.2)

    async def read_dead_letters(self, streams) -> int:
        """Read the dead-letter entries added since the last call; returns how many."""
        total = 0
        for st in streams:
            d = dlq(st)
            while True:
                rows = await self.r.xrange(self.key(d), min=f"({self.cursor[d]}", count=2000)
                if not rows:
                    break
                for _eid, fields in rows:
                    f = {k: v for k, v in (fields or {}).items() if isinstance(k, bytes)}
                    stream, group = _s(f.get(b"dlq_stream", b"?")), _s(f.get(b"dlq_group", b"?"))
                    entry = _s(f.get(b"dlq_entry_id", b"?"))
                    self.rep.dead_lettered.setdefault(stream, {}).setdefault(group, 0)
                    self.rep.dead_lettered[stream][group] += 1
                    if stream != st:
                        self.rep.problems.append(f"{d} holds an entry of {stream!r}")
                    elif entry not in self.ids[st]:
                        self.rep.problems.append(
                            f"{st}: group {group} dead-lettered {entry}, which the fuzzer did "
                            f"not inject (reason: {_s(f.get(b'dlq_reason', b''))[:200]})")
                    elif entry in self.seen[(st, group)]:
                        self.rep.problems.append(f"{st}: group {group} dead-lettered {entry} twice")
                    self.seen[(st, group)].add(entry)
                self.cursor[d] = _s(rows[-1][0])
                total += len(rows)
        return total

    async def inject(self, stream: str, factory: fuzz_entries.EntryFactory, lo: int, hi: int,
                     cats: Counter) -> str:
        """XADD entries ``lo..hi-1`` of ``stream`` (MAXLEN ~ as producers do); last id."""
        last = ""
        ml = maxlen(stream)
        for a in range(lo, hi, 250):
            async with self.r.pipeline(transaction=False) as p:
                for i in range(a, min(a + 250, hi)):
                    cat, fields = factory.make(i)
                    cats[cat] += 1
                    p.xadd(self.key(stream), fields, maxlen=ml, approximate=True)
                ids = await p.execute()
            for eid in ids:
                self.ids[stream].add(_s(eid))
            last = _s(ids[-1])
        return last

    async def _trim(self, stream: str, last_input_id: str) -> None:
        await self.r.xtrim(self.key(stream), minid=last_input_id)
        await self.r.xtrim(self.key(dlq(stream)), minid=self.cursor[dlq(stream)])

    # -- the run -------------------------------------------------------------------------
    async def run(self) -> StreamReport:
        consumers = self.mesh.consumers()
        groups: dict[str, list[str]] = defaultdict(list)
        for c in consumers.values():
            for st in c["streams"]:
                groups[st].append(c["group"])
        streams = sorted(groups)
        self.rep.groups = {st: sorted(groups[st]) for st in streams}
        before = {n: self.mesh.status(n) for n in consumers}
        added0 = {st: await self._entries_added(dlq(st)) for st in streams}
        for st in streams:
            self.cursor[dlq(st)] = await self._last_id(dlq(st))
        big = self.n // 2 if self.big_entries and self.n >= 2 else None
        factories = {st: fuzz_entries.EntryFactory(st, seed=self.seed, big_entry_index=big)
                     for st in streams}
        cats: Counter = Counter()
        self.log(f"streams: {len(streams)} consumed ({', '.join(streams)}), "
                 f"{sum(len(g) for g in groups.values())} (stream, group) pairs; "
                 f"{self.n} malformed entries per stream in rounds of {self.chunk}")
        t0 = time.monotonic()
        for lo in range(0, self.n, self.chunk):
            hi = min(lo + self.chunk, self.n)
            last = {st: await self.inject(st, factories[st], lo, hi, cats) for st in streams}
            self.rep.injected = {st: len(self.ids[st]) for st in streams}
            self.rep.secs = time.monotonic() - t0
            await self.wait_drained(streams, f"round {lo // self.chunk + 1}")
            got = await self.read_dead_letters(streams)
            if self.trim:
                for st in streams:
                    await self._trim(st, last[st])
            el = time.monotonic() - t0
            self.log(f"  {hi:>7}/{self.n} per stream: {hi * len(streams):>8} injected, "
                     f"{self.rep.total_dead_lettered:>8} dead-lettered (+{got}), {el:6.1f}s")
        self.rep.secs = time.monotonic() - t0
        self.rep.injected = {st: len(self.ids[st]) for st in streams}
        self.rep.categories = dict(sorted(cats.items()))
        self.rep.redrawn = sum(f.rejected for f in factories.values())
        await self._check_counts(streams, consumers, before, added0)
        await self._check_valid_after(streams, consumers)
        return self.rep

    async def _check_counts(self, streams, consumers, before, added0) -> None:
        p = self.rep.problems
        for st in streams:
            for g in self.rep.groups[st]:
                missing = self.ids[st] - self.seen[(st, g)]
                if missing:
                    p.append(f"{st}: group {g} did not dead-letter {len(missing)} of "
                             f"{len(self.ids[st])} entries (e.g. {sorted(missing)[:3]})")
            extra = set(self.rep.dead_lettered.get(st, {})) - set(self.rep.groups[st])
            if extra:
                p.append(f"{st}: dead letters from groups that do not consume it: {extra}")
            a0, a1 = added0[st], await self._entries_added(dlq(st))
            if a0 is not None and a1 is not None:
                self.rep.dlq_entries_added[st] = a1 - a0
                want = self.n * len(self.rep.groups[st])
                if a1 - a0 != want:
                    p.append(f"{dlq(st)}: entries-added grew by {a1 - a0}, expected {want}")
        for name, c in consumers.items():
            now = self.mesh.status(name)
            grew = now["dead_lettered"] - before[name]["dead_lettered"]
            want = self.n * len(c["streams"])
            if grew != want:
                p.append(f"{name}: /status dead_lettered grew by {grew}, expected {want}")

    async def _check_valid_after(self, streams, consumers) -> None:
        """A valid bar and DVOL point after the garbage: handled by every consumer."""
        before = {n: self.mesh.status(n)["handled"] for n in consumers}
        valid: dict[str, str] = {}
        for st, (_eid, fields) in ((MD_BAR, fuzz_entries.valid_bar_fields(ts_init_ns=time.time_ns())),
                                  (MD_DVOL, fuzz_entries.valid_dvol_fields(
                                      ts_init_ns=time.time_ns()))):
            if st in streams:
                entry = await self.r.xadd(self.key(st), fields, maxlen=maxlen(st), approximate=True)
                valid[st] = _s(entry)
        await self.wait_drained(streams, "valid events")
        await asyncio.sleep(1.0)        # outputs of the valid events, consumed in turn
        await self.wait_drained(streams, "valid events' outputs")
        n_before = self.rep.total_dead_lettered
        await self.read_dead_letters(streams)
        if self.rep.total_dead_lettered != n_before:
            self.rep.problems.append(
                f"{self.rep.total_dead_lettered - n_before} dead letters after the valid events")
        for name, c in consumers.items():
            want = sum(1 for st in valid if st in c["streams"])
            grew = self.mesh.status(name)["handled"] - before[name]
            self.rep.valid_handled[name] = grew
            if grew < want:
                self.rep.problems.append(f"{name}: handled {grew} of the {want} valid events "
                                         f"published after the garbage")
        busy = await self.busy(streams)
        if busy:
            self.rep.problems.append(f"groups not idle at the end: {busy}")

    async def close(self) -> None:
        await self.r.aclose()
