"""The mesh fault drills: Redis restarted, PostgreSQL stopped, venue faults. Each replays the same
window as the clean run with one fault, then compares (:mod:`tm_app.faults_compare`).

Faults are triggered from the mesh's ``on_tick`` hook when the replay reaches a bar time, and run
in a thread so that the supervisor keeps polling (and restarting any service that died) while a
server is down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tm_common.timefmt import utc_minute

from tm_app.faults_compare import Check, db_checks, ratio, trading_checks
from tm_app.faults_infra import Outage, PrivatePostgres, PrivateRedis
from tm_app.faults_run import RunResult, mesh_run, ports

BAR_MS = 4 * 3600_000


@dataclass
class DrillReport:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failures(self) -> list[str]:
        return [f"{self.name}: {c.name}: {c.detail}" for c in self.checks if not c.ok]


@dataclass
class DrillContext:
    pg: PrivatePostgres
    redis: PrivateRedis
    work: Path
    start_ms: int
    end_ms: int
    port_offset: int
    log: Callable[[str], None] = print
    clean: RunResult | None = None

    def run(self, name: str, **kw) -> RunResult:
        return mesh_run(name, pg=self.pg, redis_url=self.redis.url, work=self.work,
                        start_ms=self.start_ms, end_ms=self.end_ms,
                        port_offset=self.port_offset, log=self.log, **kw)

    def bar_at(self, fraction: float) -> int:
        """The bar open time ``fraction`` of the way through the window."""
        steps = (self.end_ms - self.start_ms) // BAR_MS
        return self.start_ms + int(steps * fraction) * BAR_MS


def current_bar(extra: dict) -> int | None:
    """The newest bar time every instrument has reached (ingest's /status)."""
    last = extra.get("last_bar_open_time_ms") or {}
    return min(last.values()) if last else None


class Trigger:
    """Runs ``action`` in a thread when the replay first reaches each bar time of ``at_ms``."""

    def __init__(self, at_ms: list[int], action: Callable[[int], None]) -> None:
        self.at_ms, self.action = sorted(at_ms), action
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.fired_at: list[int] = []                # the bar time reached when each fired

    def __call__(self, _sup, extra: dict) -> None:
        bar = current_bar(extra)
        if bar is None or not self.at_ms or bar < self.at_ms[0]:
            return
        if any(t.is_alive() for t in self.threads):
            return                                  # one fault at a time
        self.at_ms.pop(0)
        self.fired_at.append(bar)
        t = threading.Thread(target=self._run, args=(len(self.threads),), daemon=True)
        self.threads.append(t)
        t.start()

    def _run(self, i: int) -> None:
        try:
            self.action(i)
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            self.errors.append(f"{type(e).__name__}: {e}")

    def join(self, timeout_s: float = 300) -> None:
        for t in self.threads:
            t.join(timeout_s)


def clean_run(ctx: DrillContext, name: str = "clean") -> RunResult:
    ctx.log(f"clean run ({(ctx.end_ms - ctx.start_ms) // BAR_MS + 1} bar times)")
    ctx.clean = ctx.run(name)
    c = ctx.clean
    if c.busy_at_end or c.notes or not c.mesh.record.snapshots:
        raise RuntimeError("the clean run is not a reference: "
                           + "; ".join([*c.busy_at_end, *c.notes] or ["no portfolio snapshot"]))
    ctx.log(f"  clean: replay {c.secs:.1f}s, {len(c.mesh.record.bars)} bars, "
            f"{len(c.venue_orders)} venue orders, {len(c.mesh.record.fills)} fills")
    return c


def _common_figures(clean: RunResult, run: RunResult) -> dict[str, Any]:
    return {"replay": ratio(run.secs, clean.secs), "replay_s": round(run.secs, 2),
            "clean_replay_s": round(clean.secs, 2),
            "venue_orders": len(run.venue_orders), "fills": len(run.mesh.record.fills),
            "transport_errors": int(run.metric_all("tm_transport_errors_total")),
            "task_restarts": int(run.metric_all("tm_task_restarts_total")),
            "process_restarts": {n: k for n, k in run.mesh.restarts.items() if k}}


def redis_drill(ctx: DrillContext, *, restarts: int = 2, down_s: float = 3.0,
                at: tuple[float, ...] = (0.5, 0.8)) -> DrillReport:
    """Restart the private Redis (AOF, fsync always) ``restarts`` times mid-run, alternating a
    clean ``SHUTDOWN`` and a SIGKILL, each down ``down_s`` seconds."""
    assert ctx.clean is not None
    rep = DrillReport("redis-restart")
    at = tuple(at[:restarts]) if len(at) >= restarts else \
        tuple((i + 1) / (restarts + 1) for i in range(restarts))
    hows = ["SHUTDOWN" if i % 2 == 0 else "SIGKILL" for i in range(restarts)]
    outages: list[Outage] = []

    def restart(i: int) -> None:
        outages.append(ctx.redis.restart(hows[i], down_s))

    trigger = Trigger([ctx.bar_at(f) for f in at], restart)
    ctx.log(f"drill: Redis restarted {restarts}x ({', '.join(hows)}), down {down_s}s each")
    run = ctx.run("redis", on_tick=trigger)
    trigger.join()
    rep.figures = {"outages": [f"{o.kind} at bar {_day(b)}: unreachable {o.down_s:.1f}s"
                               for o, b in zip(outages, trigger.fired_at)],
                   **_common_figures(ctx.clean, run)}
    rep.checks.append(Check("Redis restarted mid-run", len(outages) == restarts and not trigger.errors,
                            f"{len(outages)}/{restarts} restarts" +
                            (f"; {trigger.errors}" if trigger.errors else "")))
    rep.checks += trading_checks(ctx.clean, run)
    rep.checks += db_checks(ctx.clean, run, ("bars", "fills", "portfolio_snapshots"))
    return rep


def postgres_drill(ctx: DrillContext, *, outage_s: float = 60.0, at: float = 0.5,
                   mode: str = "fast") -> DrillReport:
    """Stop the private PostgreSQL ``outage_s`` seconds mid-run (``pg_ctl stop -m mode``)."""
    assert ctx.clean is not None
    rep = DrillReport("postgres-outage")
    window: dict[str, Any] = {}
    seen: dict[str, int] = {}

    def outage(_i: int) -> None:
        window["bar_from"], window["pub_from"] = seen["bar"], seen["published"]
        t0 = time.monotonic()
        ctx.pg.stop(mode)
        time.sleep(outage_s)
        window["bar_to"], window["pub_to"] = seen["bar"], seen["published"]
        ctx.pg.start()
        window["down_s"] = time.monotonic() - t0

    inner = Trigger([ctx.bar_at(at)], outage)

    def tick(sup, extra):
        if extra:
            seen["bar"] = current_bar(extra) or seen.get("bar", 0)
            seen["published"] = int(extra.get("published", 0))
        inner(sup, extra)
    ctx.log(f"drill: PostgreSQL stopped ({mode}) for {outage_s:.0f}s")
    run = ctx.run("postgres", on_tick=tick)
    inner.join()
    if not ctx.pg.running():            # the replay ended first: the thread restarts it
        ctx.pg.start()
    failures = {n: (s.get("db") or {}).get("failures", 0) for n, s in run.statuses.items()
                if s.get("db")}
    failures["ingest"] = (run.ingest.get("db") or {}).get("failures", 0)
    b0, b1 = window.get("bar_from", 0), window.get("bar_to", 0)
    during = [o for o in run.mesh.record.orders if b0 < o.bar_time_ms <= b1]
    clean_during = [o for o in ctx.clean.mesh.record.orders if b0 < o.bar_time_ms <= b1]
    rep.figures = {"outage": f"{window.get('down_s', 0):.1f}s (bars {_day(b0)} → {_day(b1)})",
                   "bar_times_replayed_during_outage": (b1 - b0) // BAR_MS,
                   "bar_times_replayed_after_it": (ctx.end_ms - b1) // BAR_MS if b1 else 0,
                   "orders_during_outage": len(during),
                   "db_write_failures_retried": failures,
                   "rows": {t: len(v) for t, v in run.db_rows.items()},
                   **_common_figures(ctx.clean, run)}
    rep.checks.append(Check("PostgreSQL stopped mid-run", "down_s" in window and not inner.errors,
                            f"down {window.get('down_s', 0):.1f}s" +
                            (f"; {inner.errors}" if inner.errors else "")))
    kept = window.get("pub_to", 0) > window.get("pub_from", 0) and len(during) == len(clean_during)
    rep.checks.append(Check("kept trading during the outage", kept,
                            f"{(b1 - b0) // BAR_MS} bar times and "
                            f"{len(during)} orders (clean {len(clean_during)}) while it was down"))
    rep.checks.append(Check("database writes retried", sum(failures.values()) > 0,
                            f"failed writes retried: {failures}"))
    rep.checks += trading_checks(ctx.clean, run)
    rep.checks += db_checks(ctx.clean, run)
    return rep


def venue_drill(ctx: DrillContext, *, rate: float = 0.10, hold_s: float = 2.0,
                client_timeout_s: float = 1.0, seed: int = 7) -> DrillReport:
    """The sim injects rate limits (10006), HTTP 5xx and timeouts, each at ``rate``, from the
    first bar of the replay to the end (``POST /sim/faults``; the start-up preflight runs
    without). A timeout holds the answer ``hold_s`` after processing the request, past the
    executor's ``client_timeout_s``: the request may have landed, the client cannot know."""
    assert ctx.clean is not None
    rep = DrillReport("venue-faults")
    sim = ports(ctx.port_offset)["exchange_sim"]
    body = {"rate_limit_prob": rate, "http_5xx_prob": rate, "timeout_prob": rate,
            "timeout_s": hold_s, "seed": seed}
    state: dict[str, Any] = {}

    def tick(_sup, _extra):
        if "config" not in state:
            r = httpx.post(f"http://127.0.0.1:{sim}/sim/faults", json=body, timeout=10)
            r.raise_for_status()
            state["config"] = r.json().get("config")
    ctx.log(f"drill: venue faults at {rate:.0%} each (10006, 5xx, timeouts held {hold_s:g}s; "
            f"executor timeout {client_timeout_s:g}s)")
    run = ctx.run("venue", on_tick=tick,
                  extra_env={"TM_EXECUTOR_VENUE_TIMEOUT_S": f"{client_timeout_s:g}"})
    injected = (run.sim_faults or {}).get("injected", {})
    errors: dict[str, int] = {}
    for key, v in run.metrics.get("executor", {}).items():
        if key.startswith("tm_executor_exchange_errors_total{") and v:
            code = key.split('ret_code="')[1].split('"')[0]
            errors[code] = errors.get(code, 0) + int(v)
    ex = run.statuses.get("executor", {})
    rep.figures = {"injected": injected, "executor_errors_retried": errors,
                   "venue_calls": ex.get("venue_calls"),
                   "venue_calls_clean": ctx.clean.statuses.get("executor", {}).get("venue_calls"),
                   **_common_figures(ctx.clean, run)}
    rep.checks.append(Check("faults injected", all(injected.get(k, 0) > 0 for k in
                                                   ("rate_limit", "http_5xx", "timeout")),
                            f"injected {injected}"))
    rep.checks += trading_checks(ctx.clean, run)
    return rep


def _day(ms: int) -> str:
    return utc_minute(ms) if ms else "?"
