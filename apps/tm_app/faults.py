"""``make faults`` / ``python -m tm_app.faults``: infrastructure and venue faults during a run,
each compared with a clean run of the same window.

Private servers only (the shared Redis and PostgreSQL are never touched): a ``redis-server`` with
AOF (``appendfsync always``) and a PostgreSQL 15 cluster made with ``initdb``, both in temp
folders on free ports. The registry is trained once (``--fast``) into a template database whose
signal model is put in production even if its gates refused it, with the e2e parity test's
cascade thresholds, so that the window trades; every run gets a fresh copy of it.

Drills (``--drills``, default all):

1. ``redis``: lockstep mesh replay; the private Redis is restarted mid-run (``SHUTDOWN``, then
   ``SIGKILL``: ``--redis-restarts``), down ``--redis-down-s`` each time, same AOF folder.
2. ``postgres``: the PostgreSQL cluster is stopped ``--pg-outage-s`` seconds mid-run; trading goes
   on, writes are retried; afterwards the rows (bars, dvol, signals, regimes, targets, fills,
   snapshots) equal the clean run's.
3. ``venue``: the sim injects rate limits (10006), HTTP 5xx and timeouts, each with probability
   ``--venue-fault-rate``, from the first bar to the last (on ``--venue-bars``, with its own
   clean run when shorter than ``--bars``: every venue call may wait out a fault).
4. ``ws``: ingest in live mode against the sim's public kline WebSocket, which drops the
   connection instead of a push with probability ``--ws-drop-prob``; ``md.bar`` must equal the
   shipped history (no bar lost or twice), as in the same run without drops.

For 1-3 the checks are: final positions, equity (curve and final), approved orders, fills and the
venue's orders identical to the clean run; no orderLinkId twice at the venue; every input handled
or dead-lettered (no group left with lag or pending; the same bars; dead letters as in the clean
run). Prints the figures of each drill; exits 1 with one line per broken check, 2 on a bad
argument or environment.

    make faults                          # 900 bar times from 2025-01-01 (venue: 150, ws: 300)
    make faults FAULTS_ARGS="--drills redis,ws --bars 150 --report faults.json"
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from tm_app.faults_drills import (
    BAR_MS,
    DrillContext,
    DrillReport,
    clean_run,
    postgres_drill,
    redis_drill,
    venue_drill,
)
from tm_app.faults_infra import InfraError, PrivatePostgres, PrivateRedis

DRILLS = ("redis", "postgres", "venue", "ws")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def _log(msg: str) -> None:
    print(msg, flush=True)


def _fail(msg: str, code: int) -> int:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return code


def print_report(rep: DrillReport) -> None:
    _log("")
    _log(f"== {rep.name}: {'ok' if rep.ok else 'BROKEN'}")
    for k, v in rep.figures.items():
        if isinstance(v, list):
            for i, item in enumerate(v):
                _log(f"   {k if i == 0 else '':<34} {item}")
        else:
            _log(f"   {k:<34} {json.dumps(v, default=str) if isinstance(v, dict) else v}")
    for c in rep.checks:
        _log(f"   {c.line()}")


def run_drills(*, drills: tuple[str, ...], start_ms: int, bars: int, work: Path, port_offset: int,
               redis_restarts: int, redis_down_s: float, pg_outage_s: float, pg_at: float,
               venue_bars: int, venue_rate: float, venue_hold_s: float,
               venue_client_timeout_s: float, ws_bars: int, ws_drop_prob: float) -> dict[str, Any]:
    """Start the private servers, run the drills, stop the servers; returns the summary."""
    from tm_common.testing.redis import free_port

    from tm_app.faults_run import prepare_registry
    from tm_app.faults_ws import ws_drill

    t0 = time.monotonic()
    pg = PrivatePostgres(free_port())
    redis = PrivateRedis(work / "redis-server", free_port())
    reports: list[DrillReport] = []
    summary: dict[str, Any] = {"window": {"start_ms": start_ms, "bars": bars}, "drills": {}}
    try:
        pg.init()
        pg.start()
        redis.start()
        _log(f"private Redis {redis.url} (AOF, fsync always), PostgreSQL on port {pg.port}")
        mesh = [d for d in drills if d != "ws"]
        if mesh:
            summary["setup_s"] = round(prepare_registry(pg, _log), 1)
            ctx = DrillContext(pg, redis, work, start_ms, start_ms + (bars - 1) * BAR_MS,
                               port_offset, log=_log)
            clean = clean_run(ctx)
            summary["clean"] = {"replay_s": round(clean.secs, 2),
                                "venue_orders": len(clean.venue_orders),
                                "fills": len(clean.mesh.record.fills),
                                "final_equity": str(clean.mesh.record.snapshots[-1].equity)
                                if clean.mesh.record.snapshots else None}
            for d in mesh:
                if d == "venue" and venue_bars != bars:
                    # The costly drill (every venue call may wait out a fault) on its own,
                    # shorter window, against its own clean run.
                    ctx = DrillContext(pg, redis, work, start_ms,
                                       start_ms + (venue_bars - 1) * BAR_MS, port_offset, log=_log)
                    clean_run(ctx, "clean_venue")
                if d == "redis":
                    reports.append(redis_drill(ctx, restarts=redis_restarts, down_s=redis_down_s))
                elif d == "postgres":
                    reports.append(postgres_drill(ctx, outage_s=pg_outage_s, at=pg_at))
                elif d == "venue":
                    reports.append(venue_drill(ctx, rate=venue_rate, hold_s=venue_hold_s,
                                               client_timeout_s=venue_client_timeout_s))
                print_report(reports[-1])
        if "ws" in drills:
            reports.append(ws_drill(redis=redis, pg=pg, work=work, symbols=SYMBOLS,
                                    start_ms=start_ms, bars=ws_bars, drop_prob=ws_drop_prob,
                                    port_offset=port_offset, log=_log))
            print_report(reports[-1])
    finally:
        redis.close()
        pg.close()
    for r in reports:
        summary["drills"][r.name] = {"ok": r.ok, "figures": r.figures,
                                     "checks": [asdict(c) for c in r.checks]}
    summary["failures"] = [f for r in reports for f in r.failures()]
    summary["total_s"] = round(time.monotonic() - t0, 1)
    return summary


def main(start: Annotated[str, typer.Option(help="Replay start, YYYY-MM-DD (UTC) or epoch ms.")]
         = "2025-01-01",
         bars: Annotated[int, typer.Option(help="Bar times of the mesh drills' window (4 h "
                                           "each; the window trades from about bar 60).",
                                           min=10)] = 900,
         drills: Annotated[str, typer.Option(help="Comma-separated: redis,postgres,venue,ws.")]
         = ",".join(DRILLS),
         redis_restarts: Annotated[int, typer.Option(help="Redis restarts (SHUTDOWN, SIGKILL, "
                                                     "...).", min=1)] = 2,
         redis_down_s: Annotated[float, typer.Option(help="Seconds Redis stays down.", min=0)] = 3.0,
         pg_outage_s: Annotated[float, typer.Option(help="Seconds PostgreSQL stays stopped.",
                                                    min=1)] = 60.0,
         pg_at: Annotated[float, typer.Option(help="Where in the window PostgreSQL stops "
                                              "(fraction).", min=0, max=1)] = 0.2,
         venue_bars: Annotated[int | None, typer.Option(
             help="Bar times of the venue drill's window, with its own clean run (default: "
                  "min(--bars, 150)).", min=10)] = None,
         venue_fault_rate: Annotated[float, typer.Option(
             help="Probability of each venue fault (10006, 5xx, timeout) per request.",
             min=0, max=1)] = 0.10,
         venue_hold_s: Annotated[float, typer.Option(help="An injected timeout holds the answer "
                                                     "this long.", min=0)] = 2.0,
         venue_client_timeout_s: Annotated[float, typer.Option(
             help="The executor's HTTP timeout in the venue drill.", min=0.1)] = 1.0,
         ws_bars: Annotated[int, typer.Option(help="Bar times of the WebSocket drill.",
                                              min=3)] = 300,
         ws_drop_prob: Annotated[float, typer.Option(help="Probability that the sim drops the "
                                                     "connection instead of a push.",
                                                     min=0, max=1)] = 0.10,
         port_offset: Annotated[int, typer.Option(help="Added to every service port.")] = 700,
         data_dir: Annotated[Path | None, typer.Option(
             help="Logs and Redis files (default: a temp folder, removed if every check "
                  "holds).")] = None,
         report: Annotated[Path | None, typer.Option(help="Write the summary as JSON.")] = None,
         ) -> None:
    """Redis restart, PostgreSQL outage, venue faults, WebSocket drops; each against a clean run."""
    from tm_app.demo import parse_day_ms
    from tm_app.windows import window_shortfall

    try:
        start_ms = parse_day_ms(start)
        chosen = tuple(d.strip() for d in drills.split(",") if d.strip())
        bad = [d for d in chosen if d not in DRILLS]
        if bad or not chosen:
            raise ValueError(f"unknown drill(s) {bad}; choose from {','.join(DRILLS)}")
    except ValueError as e:
        raise SystemExit(_fail(str(e), 2)) from e
    for n in (bars, ws_bars):
        if (why := window_shortfall(SYMBOLS, start, start_ms, n, fewer="bars")) is not None:
            raise SystemExit(_fail(why, 2))
    work = data_dir.resolve() if data_dir else Path(tempfile.mkdtemp(prefix="tm-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    _log(f"fault drills {','.join(chosen)}: {bars} bar times from {start} "
         f"(ws: {ws_bars}); logs in {work}")
    try:
        summary = run_drills(drills=chosen, start_ms=start_ms, bars=bars, work=work,
                             port_offset=port_offset, redis_restarts=redis_restarts,
                             redis_down_s=redis_down_s, pg_outage_s=pg_outage_s, pg_at=pg_at,
                             venue_bars=venue_bars or min(bars, 150),
                             venue_rate=venue_fault_rate, venue_hold_s=venue_hold_s,
                             venue_client_timeout_s=venue_client_timeout_s, ws_bars=ws_bars,
                             ws_drop_prob=ws_drop_prob)
    except InfraError as e:
        raise SystemExit(_fail(str(e), 2)) from e
    except RuntimeError as e:               # a mesh that did not start or finish
        raise SystemExit(_fail(f"{e} (logs in {work})", 1)) from e
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(summary, indent=2, default=str))
    _log("")
    _log(f"total {summary['total_s']}s")
    if summary["failures"]:
        for f in summary["failures"]:
            print(f"BROKEN {f}", file=sys.stderr, flush=True)
        _log(f"{len(summary['failures'])} broken check(s); logs in {work}")
        raise SystemExit(1)
    _log("every drill holds: same positions, equity, orders and rows as the clean runs")
    if data_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
