"""Fuzz the running mesh: malformed entries into every consumed stream, schemathesis on every API.

    python tm_app.fuzz.streams [-n 10000] [--examples 100] [--port-offset 800] ...
    make fuzz FUZZ_ARGS="-n 2000"

1. Every service runs as a real process under the supervisor (``tm_app.fuzz.mesh``: the
   supervisor of ``tm up`` / ``tm_app.mesh``, a private namespace, ports 8101-8108 + offset).
2. Streams (``tm_app.fuzz.dlq``): ``-n`` malformed entries (``tm_app.fuzz.entries``: bad
   JSON, wrong types, huge values, unknown types, missing fields, wrong schema_version, binary
   garbage, oversized fields) go into every stream some service consumes (the services' ``/status`` says which), in rounds
   of ``--chunk`` per stream; after each round the tool waits until every group has lag 0 and
   pending 0, then reads the new dead-letter entries (``<stream>.dlq``: each is the original
   entry plus ``dlq_stream``, ``dlq_group``, ``dlq_entry_id``, ``dlq_reason``).
   Checks: every injected entry id is dead-lettered exactly once by every consuming group, and
   nothing else is; on Redis 7 the dead-letter streams' ``entries-added`` grew by exactly
   ``n × groups``; each service's own ``dead_lettered`` count grew by ``n`` per stream it
   consumes; then a valid ``bar.closed`` (every consumer reads ``md.bar``) and ``dvol.updated``
   are published and must be handled (each service's ``handled`` count grows, nothing more is
   dead-lettered); every group ends with lag 0 and pending 0.
3. schemathesis (``tm_app.fuzz.openapi``) on every service's OpenAPI, then hostile bodies
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
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from tm_app.fuzz import mesh as fuzz_mesh
from tm_app.fuzz import openapi as fuzz_openapi
from tm_app.fuzz.dlq import StreamFuzzer, StreamReport


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
            if r.exit_code or r.failures or r.errors:
                problems.append(f"schemathesis {r.service}: {r.failures} failures, {r.errors} "
                                f"errors, exit {r.exit_code}: " + " | ".join(r.details[:5]))
            problems += [f"probe {r.service}: {p}" for p in r.probe_problems]
        summary["schemathesis"] = {"secs": secs, "results": [asdict(r) for r in results]}
        problems += check_alive(mesh, "after schemathesis")
    summary["restarts"] = mesh.restarts()
    summary["problems"] = problems
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
