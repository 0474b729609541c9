"""WebSocket drops on ingest: ingest in live mode against the exchange sim's public kline feed,
while the sim drops the connection instead of sending a push with probability ``drop_prob``.

The sim and the ingest service run as processes (under the supervisor); the drill moves the sim's
clock one bar at a time, waiting (up to ``step_wait_s``) until ingest has published the bar of
every instrument, as a live feed would deliver one bar every four hours. Ingest reconnects and
backfills the hole over REST. At the end ``md.bar`` (and the ``bars`` table) must hold exactly
the shipped history of the window: no bar lost, none twice, in order per instrument. The same run
without drops gives the reference time.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from tm_common.history import load_bars

from tm_app.faults_compare import Check, first_diff
from tm_app.faults_drills import BAR_MS, DrillReport
from tm_app.faults_infra import PrivatePostgres, PrivateRedis
from tm_app.faults_run import get_json, scrape
from tm_app.stack.services import BY_NAME
from tm_app.stack.supervisor import ProcessSpec, Supervisor


def _specs(*, redis_url: str, db_url: str, namespace: str, symbols: tuple[str, ...],
           start_ms: int, drop_prob: float, seed: int, port_offset: int) -> list[ProcessSpec]:
    sim_port = BY_NAME["exchange_sim"].port + port_offset
    ingest_port = BY_NAME["ingest"].port + port_offset
    sim = f"http://127.0.0.1:{sim_port}"
    common = {"TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_LOG_LEVEL": "WARNING",
              "TM_SYMBOLS": ",".join(symbols)}
    sim_env = {**common, "TM_SERVICE_NAME": "exchange_sim", "TM_HTTP_PORT": str(sim_port),
               "TM_SIM_START_MS": str(start_ms), "TM_SIM_SEED": str(seed),
               "TM_SIM_SYMBOLS": json.dumps(list(symbols)),
               "TM_SIM_FAULT_WS_DROP_PROB": f"{drop_prob:g}"}
    ingest_env = {**common, "TM_SERVICE_NAME": "ingest", "TM_HTTP_PORT": str(ingest_port),
                  "TM_MODE": "live", "TM_DATABASE_URL": db_url, "TM_INGEST_BYBIT_REST_URL": sim,
                  "TM_INGEST_BYBIT_WS_URL": sim.replace("http", "ws") + "/v5/public/linear",
                  "TM_INGEST_BACKFILL_START_MS": str(start_ms), "TM_INGEST_DVOL_ENABLED": "false"}
    return [ProcessSpec("exchange_sim", [sys.executable, "-m", BY_NAME["exchange_sim"].module],
                        env=sim_env, port=sim_port),
            ProcessSpec("ingest", [sys.executable, "-m", BY_NAME["ingest"].module],
                        env=ingest_env, port=ingest_port)]


def _wait_http(port: int, path: str, timeout_s: float, sup: Supervisor) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sup.poll()
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"port {port} {path} not answering after {timeout_s:.0f}s")


def _reached(port: int, symbols, t: int) -> bool:
    last = (get_json(port, "/status").get("extra") or {}).get("last_bar_open_time_ms") or {}
    return all(last.get(s, -1) >= t for s in symbols)


async def _md_bar(redis_url: str, namespace: str) -> list[dict]:
    from tm_common.bus.redis import RedisStreamsBus
    from tm_common.bus.streams import MD_BAR

    bus = RedisStreamsBus(redis_url, prefix=namespace)
    try:
        return [json.loads(f["body"]) for _, f in await bus.entries(MD_BAR, 1_000_000)]
    finally:
        await bus.close()


async def _bar_rows(db_url: str) -> list[tuple]:
    import sqlalchemy as sa
    from tm_common.db import make_engine

    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            q = sa.text("SELECT instrument, open_time_ms, open, high, low, close, volume FROM bars "
                        "ORDER BY open_time_ms, instrument")
            return [(r[0], int(r[1]), *(str(x) for x in r[2:])) for r in (await conn.execute(q)).all()]
    finally:
        await engine.dispose()


def _norm(x: Any) -> str:
    from decimal import Decimal

    return format(Decimal(str(x)).normalize(), "f")


def ws_run(name: str, *, redis: PrivateRedis, pg: PrivatePostgres, work: Path,
           symbols: tuple[str, ...], start_ms: int, bars: int, drop_prob: float, seed: int,
           port_offset: int, step_wait_s: float, final_wait_s: float, log=print) -> dict[str, Any]:
    """One live-mode run of ``bars`` bar times; returns what it saw (see :func:`ws_drill`)."""
    namespace = f"tmfaults:{name}:{int(time.time())}:"
    db_url = pg.create_db(f"tm_faults_{name}")
    from tm_common.db.migrate import migrate
    migrate(db_url)
    specs = _specs(redis_url=redis.url, db_url=db_url, namespace=namespace, symbols=symbols,
                   start_ms=start_ms, drop_prob=drop_prob, seed=seed, port_offset=port_offset)
    sim_port, ingest_port = specs[0].port, specs[1].port
    assert sim_port is not None and ingest_port is not None     # _specs gives each one a port
    sup = Supervisor(specs, state_path=work / f"{name}.json", log_dir=work / name / "logs",
                     grace_s=15)
    end_ms = start_ms + (bars - 1) * BAR_MS
    waits: list[float] = []
    late = 0
    sup.start()
    try:
        _wait_http(sim_port, "/healthz", 120, sup)
        _wait_http(ingest_port, "/readyz", 120, sup)
        t0 = time.monotonic()
        deadline = time.monotonic() + 120             # the cold-start backfill of bar start_ms
        while not _reached(ingest_port, symbols, start_ms) and time.monotonic() < deadline:
            sup.poll()
            time.sleep(0.05)
        for t in range(start_ms + BAR_MS, end_ms + 1, BAR_MS):
            r = httpx.post(f"http://127.0.0.1:{sim_port}/sim/clock", json={"bar_time_ms": t},
                           timeout=30)
            r.raise_for_status()
            t1 = time.monotonic()
            while not _reached(ingest_port, symbols, t) and time.monotonic() - t1 < step_wait_s:
                sup.poll()
                time.sleep(0.01)
            waits.append(time.monotonic() - t1)
            late += waits[-1] >= step_wait_s
        t1 = time.monotonic()
        while not _reached(ingest_port, symbols, end_ms) and time.monotonic() - t1 < final_wait_s:
            sup.poll()
            time.sleep(0.05)
        secs = time.monotonic() - t0
        status = get_json(ingest_port, "/status").get("extra") or {}
        metrics = scrape(ingest_port)
        faults = get_json(sim_port, "/sim/faults")
    finally:
        sup.stop()                              # ingest lands its queued bars as it stops
    restarts = {n: p.restarts for n, p in sup.procs.items() if p.restarts}
    return {"secs": secs, "waits": waits, "late": late, "status": status, "metrics": metrics,
            "faults": faults, "restarts": restarts, "end_ms": end_ms,
            "md_bar": asyncio.run(_md_bar(redis.url, namespace)),
            "rows": asyncio.run(_bar_rows(db_url))}


def expected_bars(symbols, start_ms: int, end_ms: int) -> list[tuple]:
    out = [(s, b.open_time_ms, _norm(b.open), _norm(b.high), _norm(b.low), _norm(b.close),
            _norm(b.volume)) for s in symbols for b in load_bars(s, start_ms, end_ms)]
    return sorted(out, key=lambda r: (r[1], r[0]))


def ws_checks(seen: dict[str, Any], expected: list[tuple], symbols) -> list[Check]:
    got = [(b["instrument"], int(b["open_time_ms"]), _norm(b["open"]), _norm(b["high"]),
            _norm(b["low"]), _norm(b["close"]), _norm(b["volume"])) for b in seen["md_bar"]]
    keys = [(g[0], g[1]) for g in got]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    out = [Check("no bar duplicated on md.bar", not dup,
                 f"{len(got)} bars" + (f"; repeated {dup[:3]}" if dup else ""))]
    ordered = all([g[1] for g in got if g[0] == s] == sorted(g[1] for g in got if g[0] == s)
                  for s in symbols)
    out.append(Check("md.bar in order per instrument", ordered, "strictly increasing open times"
                     if ordered else "an instrument's bars are out of order"))
    ok = sorted(got, key=lambda r: (r[1], r[0])) == expected
    out.append(Check("md.bar equals the shipped history", ok,
                     f"{len(expected)} bars, none lost" if ok else
                     first_diff(expected, sorted(got, key=lambda r: (r[1], r[0])))))
    rows = [(r[0], r[1], *(_norm(x) for x in r[2:])) for r in seen["rows"]]
    out.append(Check("bars table equals the shipped history", rows == expected,
                     f"{len(rows)} rows" if rows == expected else first_diff(expected, rows)))
    out.append(Check("no process restarted", not seen["restarts"], f"restarts {seen['restarts']}"))
    return out


def ws_drill(*, redis: PrivateRedis, pg: PrivatePostgres, work: Path, symbols: tuple[str, ...],
             start_ms: int, bars: int, drop_prob: float = 0.10, seed: int = 11,
             port_offset: int = 700, step_wait_s: float = 10.0, final_wait_s: float = 60.0,
             log=print) -> DrillReport:
    rep = DrillReport("ws-drops")
    kw = {"redis": redis, "pg": pg, "work": work, "symbols": symbols, "start_ms": start_ms,
          "bars": bars, "seed": seed, "port_offset": port_offset, "step_wait_s": step_wait_s,
          "final_wait_s": final_wait_s, "log": log}
    log(f"drill: ingest live mode, {bars} bar times; clean feed first")
    clean = ws_run("ws_clean", drop_prob=0.0, **kw)
    log(f"  clean feed: {clean['secs']:.1f}s; now with WebSocket drops at {drop_prob:.0%} per push")
    drops = ws_run("ws_drops", drop_prob=drop_prob, **kw)
    expected = expected_bars(symbols, start_ms, drops["end_ms"])
    st = drops["status"]
    live = st.get("live") or {}
    injected = (drops["faults"] or {}).get("injected", {})
    waits = drops["waits"] or [0.0]
    rep.figures = {
        "bar_times": bars, "drop_prob": drop_prob,
        "ws_drops_injected": injected.get("ws_drop", 0),
        "ws_connects": live.get("connects"), "backfilled_bars": live.get("backfilled"),
        "gaps_detected": st.get("gaps"), "duplicates_skipped": st.get("duplicates"),
        "live_errors": live.get("errors"),
        "bar_wait_p50_s": round(statistics.median(waits), 3), "bar_wait_max_s": round(max(waits), 2),
        "bars_later_than_step_wait": drops["late"],
        "run": f"{drops['secs']:.1f}s vs clean {clean['secs']:.1f}s "
               f"(x{drops['secs'] / max(clean['secs'], 1e-9):.2f})",
        "run_s": round(drops["secs"], 2), "clean_run_s": round(clean["secs"], 2),
    }
    rep.checks.append(Check("WebSocket dropped", injected.get("ws_drop", 0) > 0 and
                            (live.get("connects") or 0) > 1,
                            f"{injected.get('ws_drop', 0)} drops, {live.get('connects')} connects"))
    rep.checks += [Check(f"clean feed: {c.name}", c.ok, c.detail)
                   for c in ws_checks(clean, expected, symbols) if not c.ok]
    rep.checks += ws_checks(drops, expected, symbols)
    return rep
