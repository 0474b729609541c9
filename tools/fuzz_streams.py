"""Fuzz the running mesh: malformed entries into every consumed stream, schemathesis on every API.

    python tools/fuzz_streams.py [-n 10000] [--examples 100] [--port-offset 800] ...
    make fuzz FUZZ_ARGS="-n 2000"

1. Every service runs as a real process under the supervisor (``tools/fuzz_mesh.py``: the
   supervisor of ``tm up`` / ``tm_app.mesh``, a private namespace, ports 8101-8108 + offset).
2. Streams: ``-n`` malformed entries (``tools/fuzz_entries.py``: bad JSON, wrong types, huge
   values, unknown types, missing fields, wrong schema_version, binary garbage, oversized fields)
   go into every stream some service consumes (the services' ``/status`` says which), in rounds
   of ``--chunk`` per stream; after each round the tool waits until every group has lag 0 and
   pending 0, then reads the new dead-letter entries (``<stream>.dlq``: each is the original
   entry plus ``dlq_stream``, ``dlq_group``, ``dlq_entry_id``, ``dlq_reason``).
   Checks: every injected entry id is dead-lettered exactly once by every consuming group, and
   nothing else is; on Redis 7 the dead-letter streams' ``entries-added`` grew by exactly
   ``n × groups``; each service's own ``dead_lettered`` count grew by ``n`` per stream it
   consumes; then a valid ``bar.closed`` (every consumer reads ``md.bar``) and ``dvol.updated``
   are published and must be handled (each service's ``handled`` count grows, nothing more is
   dead-lettered); every group ends with lag 0 and pending 0.
3. schemathesis (``tools/fuzz_openapi.py``) on every service's OpenAPI, then hostile bodies
   and headers schemathesis does not generate (deep nesting, invalid UTF-8, NaN, huge values):
   no 5xx.
4. Throughout: no service restarted (supervisor restarts 0, process alive, no task restarted
   inside a process) and every ``/healthz`` answers 200.

Between rounds, the entries already verified are trimmed from the input and dead-letter streams
(``XTRIM MINID``), so Redis holds one round at a time (dead-letter growth is counted from the
entries read and ``entries-added``, which trimming does not change). The namespace is deleted
at the end unless ``--keep``. Exit status 0 when every check passed, 1 otherwise, 2 when the
mesh could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz_entries
import fuzz_mesh
import fuzz_openapi
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from tm_common.bus.streams import MD_BAR, MD_DVOL, dlq, maxlen


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
            info = await self.r.xinfo_stream(self.key(stream))
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
                    lag = len(await self.r.xrange(self.key(st), min=f"({last}", count=1))
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
                for eid, fields in rows:
                    f = {k: v for k, v in fields.items() if isinstance(k, bytes)}
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
        for st, (eid, fields) in ((MD_BAR, fuzz_entries.valid_bar_fields(ts_init_ns=time.time_ns())),
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


def check_alive(mesh: fuzz_mesh.Mesh, when: str) -> list[str]:
    """Restarts (supervisor, in-process tasks) and ``/healthz`` of every service."""
    problems = []
    restarts = {n: c for n, c in mesh.restarts().items() if c}
    if restarts:
        problems.append(f"{when}: services restarted or not running: {restarts}")
    tasks = {n: c for n, c in mesh.task_restarts().items() if c}
    if tasks:
        problems.append(f"{when}: tasks crashed and restarted inside: {tasks}")
    health = {n: c for n, c in mesh.health().items() if c != 200}
    if health:
        problems.append(f"{when}: /healthz not 200: {health}")
    return problems


def print_streams(rep: StreamReport, log=print) -> None:
    log("")
    log(f"{'stream':<20} {'injected':>9}  dead-lettered per consuming group")
    for st, groups in rep.groups.items():
        dl = rep.dead_lettered.get(st, {})
        cells = ", ".join(f"{g} {dl.get(g, 0)}" for g in groups)
        log(f"{st:<20} {rep.injected.get(st, 0):>9}  {cells}")
    secs = max(rep.secs, 1e-9)
    log(f"injected {rep.total_injected} malformed entries ({len(rep.injected)} streams), "
        f"dead-lettered {rep.total_dead_lettered} (one per consuming group) in {rep.secs:.1f}s: "
        f"{rep.total_injected / secs:,.0f} injected/s, {rep.total_dead_lettered / secs:,.0f} "
        f"dead letters/s")
    log(f"categories: {rep.categories} (redrawn because they decoded: {rep.redrawn})")
    if rep.dlq_entries_added:
        log(f"dead-letter streams' entries-added: {sum(rep.dlq_entries_added.values())}")
    log(f"valid events handled after the garbage (per service): {rep.valid_handled}")


def default_redis_url() -> str | None:
    return os.environ.get("TM_REDIS_URL") or os.environ.get("TM_TEST_REDIS_URL")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--entries", type=int, default=10_000,
                    help="malformed entries per consumed stream (default 10000)")
    ap.add_argument("--chunk", type=int, default=1000, help="entries per stream per round")
    ap.add_argument("--examples", type=int, default=100,
                    help="schemathesis --max-examples per operation (default 100)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port-offset", type=int, default=800)
    ap.add_argument("--redis-url", default=default_redis_url(),
                    help="default TM_REDIS_URL / TM_TEST_REDIS_URL, else an embedded Redis")
    ap.add_argument("--database-url", default=None, help="default: SQLite in the data dir")
    ap.add_argument("--data-dir", type=Path, default=None, help="logs, SQLite, reports "
                    "(default: a temporary folder, removed unless --keep)")
    ap.add_argument("--no-streams", action="store_true", help="skip the stream fuzz")
    ap.add_argument("--no-schemathesis", action="store_true", help="skip schemathesis")
    ap.add_argument("--no-big", action="store_true", help="no 1 MiB entry per stream")
    ap.add_argument("--no-hostile", action="store_true",
                    help="skip the hostile-request probe after schemathesis")
    ap.add_argument("--keep", action="store_true", help="keep the namespace and the data dir")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    return run(args)


def run(args) -> int:
    import shutil
    from contextlib import ExitStack

    from tm_common.testing.redis import delete_namespace, embedded_redis

    with ExitStack() as stack:
        data = args.data_dir or Path(tempfile.mkdtemp(prefix="tm-fuzz-"))
        data.mkdir(parents=True, exist_ok=True)
        if args.data_dir is None and not args.keep:
            stack.callback(shutil.rmtree, data, True)
        redis_url = args.redis_url or stack.enter_context(embedded_redis())
        db = args.database_url or f"sqlite+aiosqlite:///{data / 'fuzz.db'}"
        print(f"fuzz: redis {redis_url.split('@')[-1]}, data {data}")
        try:
            mesh = fuzz_mesh.start(redis_url=redis_url, database_url=db, data_dir=data,
                                   port_offset=args.port_offset)
        except RuntimeError as e:
            print(f"FAIL: the mesh did not start: {e}")
            return 2
        if not args.keep:
            stack.callback(delete_namespace, redis_url, mesh.namespace)
        stack.callback(mesh.sup.stop)
        summary = fuzz(mesh, redis_url, args, data)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2, default=str))
        problems = summary["problems"]
        if problems:
            print(f"\nFAIL: {len(problems)} problem(s):")
            for p in problems[:50]:
                print(f"  - {p}")
            print(f"logs: {data / 'logs'}")
            return 1
        print("\nPASS: every malformed entry dead-lettered, no 5xx, no restart")
        return 0


def fuzz(mesh: fuzz_mesh.Mesh, redis_url: str, args, data: Path) -> dict:
    """The stream fuzz and schemathesis on a running mesh; the figures and the problems."""
    problems: list[str] = []
    summary: dict = {"namespace": mesh.namespace}
    if not args.no_streams:
        async def streams() -> StreamReport:
            f = StreamFuzzer(mesh, redis_url, n=args.entries, chunk=args.chunk, seed=args.seed,
                             big_entries=not args.no_big)
            try:
                return await f.run()
            except RuntimeError as e:
                f.rep.problems.append(str(e))
                return f.rep
            finally:
                await f.close()
        rep = asyncio.run(streams())
        print_streams(rep)
        problems += rep.problems
        summary["streams"] = {**asdict(rep), "total_injected": rep.total_injected,
                              "total_dead_lettered": rep.total_dead_lettered}
        problems += check_alive(mesh, "after the stream fuzz")
    if not args.no_schemathesis:
        envs = {n: fuzz_mesh.spec_env(mesh, n) for n in mesh.ports}
        t0 = time.monotonic()
        results = fuzz_openapi.fuzz_services(mesh.ports, envs, out_dir=data / "schemathesis",
                                             max_examples=args.examples, seed=args.seed,
                                             admin_token=mesh.admin_token,
                                             hostile=not args.no_hostile)
        secs = time.monotonic() - t0
        print(f"schemathesis: {sum(r.operations for r in results)} operations, "
              f"{sum(r.cases for r in results)} test cases, "
              f"{sum(r.failures for r in results)} failures in {secs:.1f}s")
        for r in results:
            if not r.ok:
                problems.append(f"schemathesis {r.service}: {r.failures} failures, {r.errors} "
                                f"errors, exit {r.exit_code}: " + " | ".join(
                                    (r.details + r.probe_problems)[:5]))
        summary["schemathesis"] = {"secs": secs, "results": [asdict(r) for r in results]}
        problems += check_alive(mesh, "after schemathesis")
    summary["restarts"] = mesh.restarts()
    summary["problems"] = problems
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
