"""Secrets never leak: the whole mesh runs as real processes with known, distinctive secrets, and
none of them appears, raw or URL-encoded, anywhere it could be read back.

Secrets (:data:`conftest.SECRETS`): the Bybit API key and secret (executor, and the exchange sim
that verifies them), ``TM_ADMIN_TOKEN`` (every service: the sim requires it, ingest sends it to
step the sim, risk guards its breaker with it), a database URL with a password (a private
PostgreSQL with SCRAM auth, so the password is really used) and a Redis URL with a password (an
ACL user on a private ``redis-server``). The database URL also asks for TLS (``?sslmode=require``),
and the run checks that every service's database session is encrypted.

The run: the services of ``tm_app.mesh`` (its ``_specs``, ports +900) under the supervisor, models
in the registry and test thresholds so that the window trades; a lockstep replay of 18 bars;
refused and accepted admin calls; malformed entries that end in dead-letter streams. Then:

- every file the run wrote (the service logs) is free of secrets;
- every key in the namespace (every stream with its entries, dead letters, state keys) is too;
- so are ``/healthz``, ``/readyz``, ``/metrics`` and ``/status`` of every service;
- bad database URLs holding a password (unreachable, malformed, wrong password) make a service
  fail with a clear error line, and the line does not hold the password.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from decimal import Decimal

import httpx
import pytest
import redis
from tm_common.bus.redis import RedisStreamsBus

from .conftest import SECRETS, WRONG_TOKEN, _clean_env, enc, leaks, wait_for

START_MS = 1_735_689_600_000                 # 2025-01-01, in the shipped history
BARS = 18
BAR_MS = 4 * 3600_000
ADMIN = SECRETS["admin_token"]
KEY, SECRET = SECRETS["bybit_api_key"], SECRETS["bybit_api_secret"]
# Test thresholds (not the shipped defaults) so that 18 bars give orders: low cascade confidence,
# VaR/HRP from 6 returns.
TRADING_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_SIZER_BLENDED_CONFIDENCE": "0.08",
               "TM_SIZER_KELLY_MIN_EACH": "1", "TM_SIZER_KELLY_PRIOR_B": "1.5", "TM_RISK_VAR_MIN_OBS": "6",
               "TM_RISK_HRP_MIN_OBS": "6", "TM_LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}


@dataclasses.dataclass
class MeshRun:
    namespace: str
    files: dict[str, str]            # path → text of every file under the run's data dir
    keys: dict[str, str]             # Redis key → everything stored under it, as text
    http: dict[str, str]             # "service GET path" → response status and body
    streams: dict[str, int]          # stream key → length
    db_sessions: list[bool]          # the services' database sessions: encrypted?


async def _register_models(db_url: str) -> None:
    from tm_common.db import make_engine
    from tm_common.db.migrate import migrate_async
    from tm_common.models.registry import ModelRegistry
    from tm_regime.testing import fit_all, regime_bundle
    from tm_signal.testing import signal_bundle

    await migrate_async(db_url)
    engine = make_engine(db_url)
    try:
        reg = ModelRegistry(engine)
        meta = {"data_hash": "security-test", "features": [], "params": {}, "metrics": {}}
        sig = signal_bundle("sig-sec-1", first_bar_ms=START_MS - 300 * BAR_MS, seed=3)
        await reg.register("signal", "sig-sec-1", sig, seed=3, **meta)
        await reg.promote("sig-sec-1", "security test")
        rb = regime_bundle("reg-sec-1", fit_all(n_bars=800))
        await reg.register("regime", "reg-sec-1", rb, seed=7, **meta)
        await reg.promote("reg-sec-1", "security test")
    finally:
        await engine.dispose()


async def _create_database(admin_url: str, name: str) -> None:
    import sqlalchemy as sa
    from tm_common.db import make_engine

    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def _db_sessions(admin_url: str, name: str) -> list[bool]:
    import sqlalchemy as sa
    from tm_common.db import make_engine

    engine = make_engine(admin_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text(
                "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.datname = :db AND a.pid <> pg_backend_pid()"), {"db": name})
            return [bool(r[0]) for r in rows]
    finally:
        await engine.dispose()


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.HTTPError:
        return None


def _ready(port: int) -> bool:
    r = _get(port, "/readyz")
    if r is None:
        return False
    return r.status_code == 200 or (r.status_code == 503 and set(r.json().get("not_ready", []))
                                    <= {"model", "policy"})


def _dump_namespace(url: str, namespace: str) -> tuple[dict[str, str], dict[str, int]]:
    """Everything under ``namespace``: stream entries (XRANGE) with their groups and consumers,
    strings, hashes, lists, sets."""
    r = redis.Redis.from_url(url)
    keys, lengths = {}, {}
    try:
        for k in sorted(r.scan_iter(f"{namespace}*", count=1000)):
            name, kind = k.decode(), r.type(k).decode()
            if kind == "stream":
                entries = r.xrange(k)
                lengths[name] = len(entries)
                groups = r.xinfo_groups(k)
                consumers = [r.xinfo_consumers(k, g["name"]) for g in groups]
                keys[name] = repr((entries, groups, consumers))
            elif kind == "string":
                keys[name] = repr(r.get(k))
            elif kind == "hash":
                keys[name] = repr(r.hgetall(k))
            elif kind == "list":
                keys[name] = repr(r.lrange(k, 0, -1))
            elif kind in ("set", "zset"):
                keys[name] = repr(r.smembers(k) if kind == "set" else r.zrange(k, 0, -1))
            else:
                keys[name] = f"<{kind}>"
    finally:
        r.close()
    return keys, lengths


def _publish_garbage(url: str, namespace: str) -> None:
    """Entries no service can decode: each consumer group dead-letters them with a reason."""
    async def go():
        bus = RedisStreamsBus(url, prefix=namespace)
        try:
            await bus.publish_raw("md.bar", {"type": "bar.closed", "schema_version": "1",
                                             "body": "{not json"})
            await bus.publish_raw("risk.order", {"garbage": "x"})
        finally:
            await bus.close()
    asyncio.run(go())


def _idle(url: str, namespace: str, streams: tuple[str, ...]) -> bool:
    async def go():
        bus = RedisStreamsBus(url, prefix=namespace)
        try:
            return not await bus.busy_groups(list(streams))
        finally:
            await bus.close()
    return asyncio.run(go())


@pytest.fixture(scope="module")
def mesh(secure_redis, private_pg, tmp_path_factory) -> MeshRun:
    from tm_app.backtest import RunConfig
    from tm_app.mesh import PIPELINE, _specs
    from tm_app.stack.supervisor import Supervisor

    redis_url = secure_redis.url()                        # redis://tmsvc:<password>@.../0
    db_name = f"tmsec_{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_database(private_pg.url(), db_name))
    # postgresql+asyncpg://postgres:<pw>@host/db?sslmode=require: every service's database
    # sessions are encrypted, through configuration alone.
    db_url = private_pg.url(db=db_name, query="?sslmode=require")
    asyncio.run(_register_models(db_url))

    data = tmp_path_factory.mktemp("mesh")
    namespace = f"tmsec:{uuid.uuid4().hex[:8]}:"
    cfg = RunConfig(start_ms=START_MS, end_ms=START_MS + BARS * BAR_MS, database_url=db_url,
                    initial_equity=Decimal(100000),
                    extra_env={**TRADING_ENV, "TM_ADMIN_TOKEN": ADMIN})
    specs = _specs(cfg, redis_url=redis_url, namespace=namespace, data_dir=data, port_offset=900)
    creds = {"TM_EXECUTOR_BYBIT_API_KEY": KEY, "TM_EXECUTOR_BYBIT_API_SECRET": SECRET, "TM_SIM_API_KEY": KEY,
             "TM_SIM_API_SECRET": SECRET}
    specs = [dataclasses.replace(s, env={**s.env, **{k: v for k, v in creds.items() if k in s.env}})
             for s in specs]
    assert sum(k in s.env for s in specs for k in creds) == 4, "the mesh's credential variables moved"
    ports = {s.name: s.port for s in specs}
    base_env = _clean_env()
    sup = Supervisor(specs[:-1], log_dir=data / "logs", grace_s=20, base_env=base_env)
    ingest = Supervisor(specs[-1:], log_dir=data / "logs", grace_s=20, base_env=base_env)
    http: dict[str, str] = {}
    sup.start()
    try:
        def ready() -> bool:
            sup.poll()                                     # restarts a crashed service
            return all(_ready(ports[n]) for n in PIPELINE)
        wait_for(ready, 180, "every service ready", interval_s=0.3)
        # Refused admin calls while the mesh runs (they are logged, and must not log the token).
        for path in ("/breaker/trip", "/breaker/kill", "/breaker/reset"):
            r = httpx.post(f"http://127.0.0.1:{ports['risk']}{path}", timeout=10,
                           headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
            assert r.status_code == 401, r.text
        r = httpx.post(f"http://127.0.0.1:{ports['exchange_sim']}/sim/clock", json={"steps": 1},
                       headers={"Authorization": f"Bearer {WRONG_TOKEN}"}, timeout=10)
        assert r.status_code == 401, r.text

        ingest.start()

        def done() -> bool:
            sup.poll()
            ingest.poll()
            r = _get(ports["ingest"], "/status")
            return r is not None and r.status_code == 200 and \
                bool(r.json().get("extra", {}).get("replay_done"))
        wait_for(done, 240, "the replay", interval_s=0.3)
        # Accepted admin calls, then entries that can only be dead-lettered.
        for path in ("/breaker/trip", "/breaker/reset"):
            r = httpx.post(f"http://127.0.0.1:{ports['risk']}{path}", json={"reason": "drill"},
                           headers={"Authorization": f"Bearer {ADMIN}"}, timeout=15)
            assert r.status_code == 200, r.text
        _publish_garbage(redis_url, namespace)
        wait_for(lambda: _idle(redis_url, namespace, ("md.bar", "risk.order", "risk.command")),
                 60, "every group done with its inputs")
        db_sessions = asyncio.run(_db_sessions(private_pg.url(), db_name))
        for name, port in ports.items():
            for path in ("/healthz", "/readyz", "/metrics", "/status"):
                r = _get(port, path)
                http[f"{name} GET {path}"] = "no answer" if r is None else \
                    f"{r.status_code} {r.headers} {r.text}"
    finally:
        ingest.stop()
        sup.stop()
    restarts = {n: p.restarts for n, p in {**sup.procs, **ingest.procs}.items() if p.restarts}
    assert not restarts, f"services restarted during the run: {restarts}"
    keys, lengths = _dump_namespace(redis_url, namespace)
    files = {str(p.relative_to(data)): p.read_text(errors="replace")
             for p in sorted(data.rglob("*")) if p.is_file()}
    return MeshRun(namespace, files, keys, http, lengths, db_sessions)


def test_the_run_used_every_secret_and_wrote_everywhere(mesh):
    """The proofs below are not vacuous: orders were signed and filled, commands and dead letters
    were written, denials were logged, every service answered."""
    n = mesh.namespace
    assert mesh.streams[f"{n}risk.order"] - 1 > 0, "no order besides the garbage entry"
    assert mesh.streams[f"{n}exec.report"] > 0
    assert mesh.streams[f"{n}risk.command"] == 2 and mesh.streams[f"{n}risk.breaker"] == 2
    assert mesh.streams[f"{n}md.bar.dlq"] >= 5 and mesh.streams[f"{n}risk.order.dlq"] >= 1
    assert any(k.startswith(f"{n}state:") for k in mesh.keys)
    assert len(mesh.http) == 8 * 4 and not any(v == "no answer" for v in mesh.http.values())
    logs = "".join(mesh.files.values())
    assert "risk.admin_denied" in logs and "risk.admin_command" in logs
    assert {f"logs/{s}.log" for s in ("exchange_sim", "executor", "ingest", "portfolio", "regime",
                                      "risk", "signal", "sizer")} <= set(mesh.files)
    assert mesh.db_sessions and all(mesh.db_sessions), mesh.db_sessions   # sslmode=require
    sim_status = mesh.http["exchange_sim GET /status"]
    assert '"dev_credentials":false' in sim_status and '"executions":0' not in sim_status


def test_no_secret_in_any_log_or_file(mesh):
    found = {path: leaks(text) for path, text in mesh.files.items()}
    assert not {p: f for p, f in found.items() if f}, found


def test_no_secret_in_any_stream_dead_letter_or_state_key(mesh):
    found = {key: leaks(text) for key, text in mesh.keys.items()}
    assert not {k: f for k, f in found.items() if f}, found


def test_no_secret_in_health_ready_metrics_or_status(mesh):
    found = {what: leaks(text) for what, text in mesh.http.items()}
    assert not {w: f for w, f in found.items() if f}, found


def test_bad_database_urls_fail_with_a_clear_redacted_error(private_pg, secure_redis, service):
    """Services that migrate at start, given database URLs that hold the password and cannot
    work, exit with an error line that says why and does not hold the password."""
    pw = enc(SECRETS["db_password"])
    common = {"TM_REDIS_URL": secure_redis.url(), "TM_NAMESPACE": "tmsec:baddb:",
              "TM_ADMIN_TOKEN": ADMIN, "TM_MODE": "off"}
    cases = {
        "unreachable": ("tm_sizer", f"postgresql+asyncpg://postgres:{pw}@127.0.0.1:1/tm",
                        "Connect call failed"),
        "malformed": ("tm_ingest", f"postgres:{pw}@127.0.0.1/tm", "TM_DATABASE_URL is not a database URL"),
        "wrong password": ("tm_ingest", private_pg.url(password="SECwrong-db-Pw@9"),
                           "password authentication failed"),
    }
    procs = {name: service(name.replace(" ", "-"), module, {**common, "TM_DATABASE_URL": url})
             for name, (module, url, _) in cases.items()}
    for name, p in procs.items():
        rc = p.wait_exit(120)
        text = p.logs()
        assert rc != 0, f"{name}: the service started with a database it cannot use:\n{text[-2000:]}"
        lines = [ln for ln in text.splitlines() if cases[name][2] in ln]
        assert lines, f"{name}: no clear error line in:\n{text[-3000:]}"
        found = leaks(text, {**SECRETS, "wrong": "SECwrong-db-Pw@9"})
        assert not found, f"{name}: {found} in:\n{text[-3000:]}"

