"""The main job: a paper-trading replay of real history through the whole mesh.

Every service and the exchange simulator run as separate OS processes under the supervisor
(restarted if one dies); ingest replays the window in lockstep, moving the simulator's clock to
each bar before publishing it. When the replay is done the run is read back from the streams and
written as a report. Redis and the database are the configured ones, or the embedded defaults.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tm_common.bus.signing import local_keys, service_signing_env
from tm_common.models.cache import NOT_CHECKED_YET
from tm_common.settings import CommonSettings, to_env
from tm_exchange_sim.config import ExchangeSimSettings
from tm_executor.config import ExecutorSettings
from tm_ingest.config import IngestSettings
from tm_portfolio.config import PortfolioSettings
from tm_regime.config import RegimeSettings
from tm_risk.config import RiskSettings
from tm_signal.config import SignalSettings
from tm_sizer.config import SizerSettings

from tm_app.backtest import RunConfig
from tm_app.record import RunRecord
from tm_app.shadow.spec import book_namespace, shadow_spec
from tm_app.stack.env_scope import basic_env, service_env
from tm_app.stack.ports import OFFSET_HINT, check_ports
from tm_app.stack.services import BY_NAME
from tm_app.stack.signals import stop_on_signals
from tm_app.stack.supervisor import ProcessSpec, Supervisor

PIPELINE = ("exchange_sim", "regime", "signal", "sizer", "risk", "executor", "portfolio")
SIM_KEY, SIM_SECRET = "demo-key", "demo-secret-not-for-production"


@dataclass
class ShadowRun:
    """The challenger's shadow book of a mesh run: its candidate, namespace, events, status."""

    candidate: str
    namespace: str
    record: RunRecord
    status: dict


@dataclass
class MeshRun:
    record: RunRecord
    namespace: str
    secs: float
    restarts: dict[str, int]
    shadow: ShadowRun | None = None


SETTINGS: dict[str, type[CommonSettings]] = {
    "exchange_sim": ExchangeSimSettings, "regime": RegimeSettings, "signal": SignalSettings,
    "sizer": SizerSettings, "risk": RiskSettings, "executor": ExecutorSettings,
    "portfolio": PortfolioSettings, "ingest": IngestSettings}


def new_namespace() -> str:
    """A fresh namespace for one run's streams: ``tmrun:<8 hex>:``."""
    return f"tmrun:{uuid.uuid4().hex[:8]}:"


def _specs(cfg: RunConfig, *, redis_url: str, namespace: str, data_dir: Path,
           port_offset: int) -> list[ProcessSpec]:
    """One process per service; its environment is its settings object rendered by ``to_env``
    (shared fields, then the part of ``cfg.extra_env`` its settings read, then the service's own
    fields, which win). The supervisor adds only the basics of this process's environment
    (``PATH``, locale, CA bundles…), so a secret in the caller's shell reaches no service."""
    port = {n: BY_NAME[n].port + port_offset for n in (*PIPELINE, "ingest")}
    sim = f"http://127.0.0.1:{port['exchange_sim']}"
    shared = {"redis_url": redis_url, "database_url": cfg.database_url, "namespace": namespace,
              "data_dir": data_dir, "log_level": "WARNING", "symbols": cfg.symbols,
              "mode": "replay", "reclaim_idle_ms": 5000, "history_dir": cfg.history_dir}
    per: dict[str, dict[str, Any]] = {
        "exchange_sim": {"sim_start_ms": cfg.start_ms, "sim_seed": cfg.sim_seed,
                         "sim_initial_balance": cfg.initial_equity,
                         "sim_slippage_bps": cfg.slippage_bps,
                         "sim_api_key": SIM_KEY, "sim_api_secret": SIM_SECRET,
                         "sim_rate_limit_per_s": 100000, "sim_symbols": list(cfg.symbols),
                         "sim_history_dir": cfg.history_dir},
        "risk": {"stale_check_interval_s": 0, "venue_rest_url": sim},
        "executor": {"bybit_rest_url": sim,
                     "bybit_private_ws_url": sim.replace("http", "ws") + "/v5/private",
                     "bybit_api_key": SIM_KEY, "bybit_api_secret": SIM_SECRET,
                     "reconcile_interval_s": 100000, "order_history_fallback": False},
        "portfolio": {"initial_equity": cfg.initial_equity},
        "ingest": {"replay_start_ms": cfg.start_ms, "replay_end_ms": cfg.end_ms,
                   "replay_venue_url": sim, "replay_lockstep": True, "replay_timeout_s": 300},
    }
    shared_env = to_env(CommonSettings.from_values(**shared))
    keys = local_keys(data_dir)            # the run's signing keys (tm_common.bus.signing)
    specs = []
    for n in (*PIPELINE, "ingest"):
        own = to_env(SETTINGS[n].from_values(**shared, service_name=n, http_port=port[n],
                                             **per.get(n, {})))
        env = {**shared_env, **service_env(n, cfg.extra_env), **service_signing_env(n, keys),
               **{k: v for k, v in own.items() if k not in shared_env}}
        specs.append(ProcessSpec(name=n, argv=[sys.executable, "-m", BY_NAME[n].module],
                                 env=env, port=port[n]))
    return specs


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=3)
        return r.status_code, r.json()
    except (httpx.HTTPError, ValueError):
        return 0, {}


def _wait_ready(sup: Supervisor, names, timeout_s: float, log: Callable[[str], None]) -> None:
    """Every service answers /readyz; a service whose only missing check is its model (the gates
    refused to promote one) counts as ready: it trades flat, and says so. One whose registry has
    not answered yet (``NOT_CHECKED_YET``) is waited for: it may well have a production model."""
    deadline = time.monotonic() + timeout_s
    pending = set(names)
    while pending:
        sup.poll()
        for n in sorted(pending):
            port = sup.procs[n].spec.port
            assert port is not None                 # every process of the mesh serves HTTP
            code, body = _get(port, "/readyz")
            unchecked = any(NOT_CHECKED_YET in str(v) for v in body.get("checks", {}).values())
            if code == 200 or (code == 503 and not unchecked
                               and set(body.get("not_ready", [])) <= {"model", "policy"}):
                pending.discard(n)
                if code == 503:
                    log(f"{n}: running without a production model ({body.get('checks', {})})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"services not ready after {timeout_s:.0f}s: {sorted(pending)}")
        time.sleep(0.3)


def run_mesh(cfg: RunConfig, *, redis_url: str, data_dir: Path, port_offset: int = 0,
             log: Callable[[str], None] = print, progress: Callable[[int, int], None] | None = None,
             namespace: str | None = None, ready_timeout_s: float = 180.0,
             replay_timeout_s: float = 3600.0,
             on_tick: Callable[[Supervisor, dict], None] | None = None,
             before_stop: Callable[[Supervisor], None] | None = None,
             on_ingest: Callable[[Supervisor], None] | None = None,
             supervisor_opts: dict | None = None, shadow: str | None = None,
             shadow_timeout_s: float = 600.0) -> MeshRun:
    """Start the mesh, replay ``cfg``'s window in lockstep, read the run back, stop the mesh.

    ``on_tick(supervisor, ingest_status_extra)`` runs on every poll of the replay (about every
    0.5 s, 0.1 s with a hook; chaos and fault drills hook in here); ``before_stop(supervisor)``
    runs after the replay, while every process still runs (e.g. to read their peak RSS).
    ``on_ingest(ingest_supervisor)`` is called once ingest's own supervisor has started (a drill
    that kills ingest too); ``supervisor_opts`` (e.g. ``backoff_max_s``) go to both
    supervisors. ``MeshRun.restarts`` counts ingest's restarts too. ``shadow``: a signal
    candidate's version to run in a shadow book beside production (``MeshRun.shadow``); the run
    waits up to ``shadow_timeout_s`` after the replay for the book to trade the last bar.

    Every port is checked before anything starts (:class:`~tm_app.stack.ports.PortsInUse`, a
    ``RuntimeError``, names a taken one and its owner). SIGTERM, SIGHUP and SIGINT stop every
    process it started, then raise :class:`~tm_app.stack.signals.StopRequested` (a
    ``RuntimeError``)."""
    namespace = namespace or new_namespace()
    specs = _specs(cfg, redis_url=redis_url, namespace=namespace, data_dir=data_dir,
                   port_offset=port_offset)
    if shadow is not None:
        specs.insert(-1, shadow_spec(shadow, shared={
            "redis_url": redis_url, "database_url": cfg.database_url, "namespace": namespace,
            "data_dir": data_dir, "log_level": "WARNING", "symbols": cfg.symbols,
            "mode": "replay", "history_dir": cfg.history_dir}, port_offset=port_offset,
            initial_equity=cfg.initial_equity, slippage_bps=cfg.slippage_bps, seed=cfg.sim_seed,
            extra_env=cfg.extra_env, flush_after_s=5.0))
    names = [s.name for s in specs[:-1]]
    check_ports({s.name: s.port for s in specs}, hint=OFFSET_HINT)
    logs = data_dir / "logs"
    opts = {"grace_s": 15, **(supervisor_opts or {})}
    opts.setdefault("base_env", basic_env())
    sup = Supervisor(specs[:-1], state_path=data_dir / "mesh.json", log_dir=logs, **opts)
    with stop_on_signals():      # a signal lands as StopRequested: the finally stops all
        t0 = time.monotonic()
        try:
            sup.start()
            _wait_ready(sup, names, ready_timeout_s, log)
            log(f"services ready in {time.monotonic() - t0:.1f}s; replaying "
                f"(namespace {namespace})")
            ingest = Supervisor([specs[-1]], state_path=data_dir / "mesh-ingest.json",
                                log_dir=logs, **opts)
            t1 = time.monotonic()
            try:
                ingest.start()
                if on_ingest is not None:
                    on_ingest(ingest)
                port = specs[-1].port
                assert port is not None
                while True:
                    sup.poll()
                    ingest.poll()
                    code, st = _get(port, "/status")
                    extra = st.get("extra", {}) if code == 200 else {}
                    if progress and extra:
                        progress(extra.get("published", 0), 0)
                    if on_tick is not None:
                        on_tick(sup, extra)
                    if extra.get("replay_done"):
                        break
                    if time.monotonic() - t1 > replay_timeout_s:
                        raise RuntimeError(f"replay did not finish in {replay_timeout_s:.0f}s; "
                                           f"see {logs}/ingest.log")
                    time.sleep(0.5 if on_tick is None else 0.1)
                secs = time.monotonic() - t1
            finally:
                ingest.stop()
            if before_stop is not None:
                before_stop(sup)
            record = asyncio.run(_read(redis_url, namespace))
            book = None
            if shadow is not None:
                book = _await_shadow(sup, record, shadow, redis_url=redis_url,
                                     namespace=namespace, timeout_s=shadow_timeout_s, log=log)
            restarts = {n: p.restarts for n, p in (*sup.procs.items(), *ingest.procs.items())}
        finally:
            sup.stop()
        return MeshRun(record, namespace, secs, restarts, book)


def _await_shadow(sup: Supervisor, record: RunRecord, candidate: str, *, redis_url: str,
                  namespace: str, timeout_s: float, log: Callable[[str], None]) -> ShadowRun:
    """Wait until the shadow book has traded production's last bar time; read its run."""
    last = max((b.open_time_ms for b in record.bars), default=0)
    port = sup.procs["shadow"].spec.port
    assert port is not None
    deadline = time.monotonic() + timeout_s
    status: dict = {}
    while time.monotonic() < deadline:
        sup.poll()
        code, st = _get(port, "/status")
        status = st.get("extra", {}) if code == 200 else status
        if (status.get("last_bar_ms") or 0) >= last:
            break
        time.sleep(0.5)
    else:
        log(f"shadow book: not caught up after {timeout_s:.0f}s "
            f"(last bar {status.get('last_bar_ms')}, production's {last}); reporting what it did")
    book_ns = book_namespace(namespace, candidate)
    return ShadowRun(candidate, book_ns, asyncio.run(_read(redis_url, book_ns)), status)


async def _read(redis_url: str, namespace: str) -> RunRecord:
    from tm_common.bus.redis import RedisStreamsBus

    bus = RedisStreamsBus(redis_url, prefix=namespace)
    try:
        return await RunRecord.from_bus(bus)
    finally:
        await bus.close()
