"""One mesh replay for the fault drills, and what is read back from it.

:func:`prepare_registry` fills a template database (schema, a fast-trained registry, the signal
candidate forced into production so that the window trades). :func:`mesh_run` copies the
template into a fresh database, replays the window through every service as a process (lockstep,
against the exchange sim) with a drill's hook, and returns a :class:`RunResult`: the run record,
every venue order, the database rows, counters scraped from every service's ``/metrics`` and
``/status``, and what the lockstep left busy.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tm_app.backtest import RunConfig
from tm_app.chaos_checks import wait_idle
from tm_app.faults_infra import PrivatePostgres
from tm_app.mesh import PIPELINE, MeshRun, run_mesh
from tm_app.stack.services import BY_NAME

# The e2e parity settings: lower cascade thresholds so that a short window trades and changes
# tier. The sizer's join timer is wall-clock based, for live only (0 = off): in a replay, an
# outage longer than it would change a decision.
TRADING_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_SIZER_BLENDED_CONFIDENCE": "0.08",
               "TM_SIZER_KELLY_MIN_EACH": "1", "TM_SIZER_KELLY_PRIOR_B": "1.5", "TM_LOG_LEVEL": "WARNING",
               "TM_SIZER_JOIN_TIMEOUT_S": "0"}
TEMPLATE_DB = "tm_faults_template"
# Rows compared between runs: table -> columns (wall-clock columns such as inference_us left out).
DB_TABLES = {
    "bars": ("instrument", "interval_min", "open_time_ms", "close_time_ms", "open", "high", "low",
             "close", "volume", "source"),
    "dvol": ("currency", "day_ms", "known_at_ms", "value"),
    "signals": ("instrument", "bar_time_ms", "direction", "probability", "confidence", "live_ic",
                "model_version", "reason"),
    "regimes": ("instrument", "bar_time_ms", "label", "probabilities", "volatility",
                "kelly_fraction", "model_version"),
    "targets": ("instrument", "bar_time_ms", "target_fraction", "tier", "reason", "rl_fraction",
                "kelly_fraction", "regime", "regime_stale", "policy_version"),
    # No event_id: a fill is published by whichever path sees it first (the order's handling,
    # or the private WebSocket/poller), so the id of the event that carried it is not fixed.
    "fills": ("exec_id", "intent_id", "order_link_id", "order_id", "instrument", "side", "qty",
              "price", "fee", "exec_time_ms"),
    "portfolio_snapshots": ("bar_time_ms", "equity", "cash", "realised_pnl", "unrealised_pnl",
                            "fees", "funding", "peak_equity", "drawdown", "positions", "event_id"),
}
ORDER_FIELDS = ("orderLinkId", "orderId", "symbol", "side", "qty", "orderStatus", "cumExecQty",
                "avgPrice", "cumExecFee", "reduceOnly", "createdTime")


def prepare_registry(pg: PrivatePostgres, log: Callable[[str], None]) -> float:
    """Template database: migrated, a fast-trained registry, signal forced to production.
    Returns the seconds it took."""
    from tm_common.db.migrate import migrate

    t0 = time.monotonic()
    url = pg.create_db(TEMPLATE_DB)
    migrate(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env["TM_DATABASE_URL"] = url
    p = subprocess.run([sys.executable, "-m", "tm_trainer", "--no-publish", "--fast",
                        "--no-progress"], check=False, env=env, capture_output=True, text=True, timeout=1200)
    if p.returncode != 0:
        raise RuntimeError(f"training failed: {(p.stderr or p.stdout).strip()[-400:]}")
    asyncio.run(_force_signal_model(url))
    log(f"registry trained into the template database in {time.monotonic() - t0:.1f}s")
    return time.monotonic() - t0


async def _force_signal_model(url: str) -> None:
    """A short window trades only with a signal model in production: put the candidate there
    even if the gates refused it (this throwaway registry only)."""
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry

    engine = make_engine(url)
    try:
        reg = ModelRegistry(engine)
        if await reg.production("signal") is None:
            cand = await reg.list("signal")
            if not cand:
                raise RuntimeError("the trainer registered no signal model")
            await reg.promote(cand[0].version, "fault drills: exercise trading")
    finally:
        await engine.dispose()


@dataclass
class RunResult:
    name: str
    mesh: MeshRun
    database: str
    venue_orders: list[dict]
    sim_faults: dict
    metrics: dict[str, dict[str, float]]          # service -> "name{labels}" -> value
    statuses: dict[str, dict]                      # service -> /status "extra"
    db_rows: dict[str, list[tuple]]
    busy_at_end: list[str]
    ingest: dict = field(default_factory=dict)     # ingest's last /status "extra"
    notes: list[str] = field(default_factory=list)

    @property
    def secs(self) -> float:
        return self.mesh.secs

    def metric(self, service: str, name: str, **labels: str) -> float:
        """Sum of ``name`` samples of ``service`` whose labels include ``labels``."""
        total = 0.0
        for key, v in self.metrics.get(service, {}).items():
            n, _, rest = key.partition("{")
            if n != name:
                continue
            if all(f'{k}="{val}"' in rest for k, val in labels.items()):
                total += v
        return total

    def metric_all(self, name: str, **labels: str) -> float:
        return sum(self.metric(s, name, **labels) for s in self.metrics)


def ports(port_offset: int) -> dict[str, int]:
    return {n: BY_NAME[n].port + port_offset for n in (*PIPELINE, "ingest")}


def get_json(port: int, path: str, timeout_s: float = 5.0) -> dict:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=timeout_s)
        return r.json() if r.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` of one service as ``{"name{labels}": value}`` (counters and gauges)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5,
                         follow_redirects=True).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def wait_db_flushed(port_of: dict[str, int], names, timeout_s: float) -> list[str]:
    """Wait until every service in ``names`` reports an empty database backlog twice in a row;
    returns those still not flushed."""
    deadline = time.monotonic() + timeout_s
    clean_rounds = 0
    while True:
        left = []
        for n in names:
            db = (get_json(port_of[n], "/status").get("extra") or {}).get("db")
            if db and (db.get("backlog") or db.get("last_error")):
                left.append(f"{n} (backlog {db.get('backlog')}, {db.get('last_error') or 'ok'})")
        clean_rounds = 0 if left else clean_rounds + 1
        if clean_rounds >= 2 or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


async def _db_rows(url: str) -> dict[str, list[tuple]]:
    import sqlalchemy as sa
    from tm_common.db import make_engine

    engine = make_engine(url)
    out: dict[str, list[tuple]] = {}
    try:
        async with engine.connect() as conn:
            for table, cols in DB_TABLES.items():
                q = sa.text(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {', '.join(cols[:3])}")
                out[table] = [tuple(str(x) for x in r) for r in (await conn.execute(q)).all()]
    finally:
        await engine.dispose()
    return out


def mesh_run(name: str, *, pg: PrivatePostgres, redis_url: str, work: Path, start_ms: int,
             end_ms: int, port_offset: int, extra_env: dict[str, str] | None = None,
             sim_env: dict[str, str] | None = None,
             on_tick: Callable[[Any, dict], None] | None = None,
             log: Callable[[str], None] = print, flush_timeout_s: float = 120.0) -> RunResult:
    """Replay ``[start_ms, end_ms]`` through the mesh on a fresh copy of the template database.

    ``extra_env`` goes to every service, ``sim_env`` only matters to the exchange sim (it is
    passed to every process, which ignore ``TM_SIM_*``). ``on_tick(supervisor, ingest_extra)``
    is the drill's hook. Once the replay is done the ingest's and every service's database
    backlog must drain (within ``flush_timeout_s``) before the run is read back."""
    db = f"tm_faults_{name}"
    db_url = pg.create_db(db, template=TEMPLATE_DB)
    cfg = RunConfig(start_ms=start_ms, end_ms=end_ms, database_url=db_url,
                    extra_env={**TRADING_ENV, **(extra_env or {}), **(sim_env or {})})
    port_of = ports(port_offset)
    data_dir = work / name
    data_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Any] = {"ingest": {}, "notes": []}

    def tick(sup, extra: dict) -> None:
        if extra:
            seen["ingest"] = extra
        if on_tick is not None:
            on_tick(sup, extra)
        if extra.get("replay_done"):
            # The ingest process is stopped as soon as the replay is done: let its database
            # writer land every bar first (it retries through an outage).
            left = wait_db_flushed(port_of, ["ingest"], flush_timeout_s)
            seen["ingest"] = (get_json(port_of["ingest"], "/status").get("extra") or extra)
            seen["ingest_metrics"] = scrape(port_of["ingest"])
            if left:
                seen["notes"].append(f"ingest database backlog not flushed: {left}")

    def before_stop(sup) -> None:
        # fills the private WebSocket delivers after the last bar may still be on their way
        seen["busy"] = wait_idle(redis_url, namespace, poll=sup.poll)
        left = wait_db_flushed(port_of, [n for n in PIPELINE if n != "exchange_sim"],
                               flush_timeout_s)
        if left:
            seen["notes"].append(f"database backlog not flushed: {'; '.join(left)}")
        sim = port_of["exchange_sim"]
        seen["orders"] = get_json(sim, "/sim/orders").get("list", [])
        seen["faults"] = get_json(sim, "/sim/faults")
        seen["metrics"] = {n: scrape(port_of[n]) for n in PIPELINE}
        seen["statuses"] = {n: get_json(port_of[n], "/status").get("extra") or {}
                            for n in PIPELINE}

    namespace = f"tmfaults:{name}:{int(time.time())}:"
    mesh = run_mesh(cfg, redis_url=redis_url, data_dir=data_dir, port_offset=port_offset,
                    log=log, namespace=namespace, on_tick=tick, before_stop=before_stop,
                    replay_timeout_s=3600)
    rows = asyncio.run(_db_rows(db_url))
    metrics = {**seen.get("metrics", {}), "ingest": seen.get("ingest_metrics", {})}
    return RunResult(name=name, mesh=mesh, database=db, venue_orders=seen.get("orders", []),
                     sim_faults=seen.get("faults", {}), metrics=metrics,
                     statuses=seen.get("statuses", {}), db_rows=rows,
                     busy_at_end=seen.get("busy", []), ingest=seen["ingest"],
                     notes=seen["notes"])


def order_view(orders: list[dict]) -> list[tuple]:
    """Venue orders as comparable tuples, in creation order (the sim's ids are sequential)."""
    return sorted((tuple(str(o.get(k)) for k in ORDER_FIELDS) for o in orders),
                  key=lambda t: (t[-1], t[0]))
