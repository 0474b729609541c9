"""``make chaos`` / ``python -m tm_app.chaos``: kill -9 services during a lockstep mesh replay of
real shipped history against the exchange simulator, and check that nothing changed.

Two runs of the same window, one after the other, each in its own stream namespace and against
a fresh simulator: a clean run, then a run where a seeded schedule (:mod:`tm_app.chaos_plan`)
kills services at random moments (``kill -9`` of regime, signal, sizer, risk, executor,
portfolio or ingest; and executor crashes between sending an order and handling the answer) and
the supervisor restarts them. The exchange simulator is not a target: it is the venue, whose
book lives in its memory (Bybit does not forget orders when our services crash). Then (:mod:`tm_app.chaos_checks`): the venue's orders, executions,
positions and wallet, the final portfolio, every event of every stream (ids and bodies) must be
identical; no orderLinkId twice at the venue; every consumer group of every stream drained
(lag 0, pending 0); no dead letter that the clean run does not have as well. Prints the figures;
exits 1 with one line per broken check, 2 on a bad argument or environment.

    make chaos                                     # 300 bar times from 2025-01-01, 50 kills
    make chaos CHAOS_ARGS="--kills 20 --seed 7 --bars 200 --report chaos.json"

The models come from a throwaway registry (``<data dir>/chaos/registry.db``, trained once with
the trainer's ``--fast`` configuration) whose signal model is put in production even if its gates
refused it, and the cascade thresholds are lowered (as in the parity test) so that the window
trades: a drill on a window without orders would prove little. ``--database-url`` uses another
registry as it is.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import redis
import typer
from tm_common.bus.streams import MD_BAR
from tm_common.timefmt import utc_minute

from tm_app.backtest import RunConfig
from tm_app.chaos_checks import RunView, bus_view, compare, delete_namespace, venue_view, wait_idle
from tm_app.chaos_plan import AFTER_SEND, BAR_MS, TARGETS, ChaosMonkey, make_plan
from tm_app.mesh import SIM_KEY, SIM_SECRET, run_mesh

# A test configuration that makes the window trade (the shipped thresholds stay unchanged for
# users); the join timer is wall-clock based and meant for live only (0 = off): in a replay a
# service restarting for longer than it would change a decision.
TRADING_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_SIZER_BLENDED_CONFIDENCE": "0.08",
               "TM_SIZER_KELLY_MIN_EACH": "1", "TM_SIZER_KELLY_PRIOR_B": "1.5"}
REPLAY_ENV = {"TM_SIZER_JOIN_TIMEOUT_S": "0", "TM_LOG_LEVEL": "WARNING"}
# Restarts after a kill: the supervisor's backoff, capped low so that 50 kills fit in minutes.
SUPERVISOR = {"backoff_initial_s": 0.5, "backoff_max_s": 2.0, "grace_s": 15}


def _log(msg: str) -> None:
    print(msg, flush=True)


def one_run(cfg: RunConfig, label: str, *, redis_url: str, data_dir: Path, port_offset: int,
            monkey: ChaosMonkey | None = None, keep_streams: bool = False) -> RunView:
    """One mesh replay of ``cfg`` (with ``monkey`` killing services, if given) → its view."""
    namespace = f"tmchaos:{uuid.uuid4().hex[:8]}:{label}:"
    view = RunView()
    steps = (cfg.end_ms - cfg.start_ms) // BAR_MS + 1
    # generous on a slow shared machine; a pipeline that stalls for good ends the drill
    replay_timeout_s = 600 + 3 * steps + (30 * len(monkey.plan) if monkey else 0)
    r = redis.Redis.from_url(redis_url)
    if monkey is not None:
        bars = namespace + MD_BAR
        monkey.steps_fn = lambda: r.xlen(bars) // len(cfg.symbols) - 1
    busy: list[str] = []

    def before_stop(sup) -> None:
        # Fills the WebSocket delivers after the last bar may still be on their way.
        busy.extend(wait_idle(redis_url, namespace, poll=sup.poll))
        sim = f"http://127.0.0.1:{sup.procs['exchange_sim'].spec.port}"
        venue_view(sim, SIM_KEY, SIM_SECRET, view)

    last = [0.0]

    def progress(published: int, _total: int) -> None:
        if monkey is None and time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            _log(f"  replay: {published} bars published")
    run_dir = data_dir / label
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        run = run_mesh(cfg, redis_url=redis_url, data_dir=run_dir, port_offset=port_offset,
                       log=lambda m: _log(f"  {m}"), progress=progress, namespace=namespace,
                       on_tick=monkey.tick if monkey else None,
                       on_ingest=monkey.on_ingest if monkey else None,
                       before_stop=before_stop, supervisor_opts=SUPERVISOR,
                       replay_timeout_s=replay_timeout_s)
        if monkey is not None:
            monkey.finish()
        view.secs, view.restarts = run.secs, run.restarts
        bus_view(redis_url, namespace, run.record, view)
    finally:
        r.close()
        if not keep_streams:
            delete_namespace(redis_url, namespace)
    if busy:
        _log(f"  {label}: still busy 120 s after the replay: {'; '.join(busy)}")
    return view


def drill(cfg: RunConfig, *, redis_url: str, data_dir: Path, kills: int, seed: int,
          services: tuple[str, ...] = TARGETS, after_send: int | None = None,
          port_offset: int = 600, keep_streams: bool = False) -> dict:
    """The clean run, the chaos run, the comparison. Returns the summary (``failures`` empty =
    every invariant holds)."""
    steps = (cfg.end_ms - cfg.start_ms) // BAR_MS + 1
    plan = make_plan(seed, kills, steps, services=services, after_send=after_send)
    arm = data_dir / "chaos" / "crash-after-send.armed"
    _log(f"chaos drill: {_window(cfg)}: {steps} bar times × {len(cfg.symbols)} instruments, "
         f"{len(plan)} kills (seed {seed}, {sum(k.mode == AFTER_SEND for k in plan)} after send)")
    _log("clean run:")
    clean = one_run(cfg, "clean", redis_url=redis_url, data_dir=data_dir,
                    port_offset=port_offset, keep_streams=keep_streams)
    _log(f"  done in {clean.secs:.1f} s: {len(clean.orders)} venue orders")
    _log("chaos run:")
    monkey = ChaosMonkey(plan, cfg.start_ms, arm, log=_log)
    chaos_cfg = replace(cfg, extra_env={**cfg.extra_env,
                                        "TM_EXECUTOR_CHAOS_CRASH_AFTER_SEND_FILE": str(arm)})
    chaos = one_run(chaos_cfg, "chaos", redis_url=redis_url, data_dir=data_dir,
                    port_offset=port_offset, monkey=monkey, keep_streams=keep_streams)
    failures, notes = compare(clean, chaos)
    if len(monkey.done) < len(plan):
        missed = ", ".join(f"{k.label()} at bar {k.at_step + 1}" for k in monkey.not_done)
        failures.append(f"only {len(monkey.done)} of {len(plan)} kills happened (not: {missed})")
    deaths = sum(chaos.restarts.values())
    if deaths != len(monkey.done):
        notes.append(f"{deaths} restarts for {len(monkey.done)} kills: "
                     + ("a service died by itself (see the logs in "
                        f"{data_dir / 'chaos' / 'logs'})" if deaths > len(monkey.done)
                        else "a killed service was not restarted before the end"))
    return {
        "window": _window(cfg), "bar_times": steps, "instruments": list(cfg.symbols),
        "seed": seed, "kills_planned": len(plan), "kills_done": len(monkey.done),
        "kills_per_service": monkey.per_service(), "restarts": chaos.restarts,
        "after_send_crashes": sum(d.kill.mode == AFTER_SEND for d in monkey.done),
        "kills": [{"service": d.kill.service, "mode": d.kill.mode, "bar": d.step + 1,
                   "at_s": round(d.at_s, 2)} for d in monkey.done],
        "replay_s": {"clean": round(clean.secs, 1), "chaos": round(chaos.secs, 1)},
        "venue_orders": {"clean": len(clean.orders), "chaos": len(chaos.orders)},
        "venue_executions": {"clean": len(clean.executions), "chaos": len(chaos.executions)},
        "fills": {"clean": len(clean.trading.get("fills", [])),
                  "chaos": len(chaos.trading.get("fills", []))},
        "events": {"clean": sum(len(v) for v in clean.entries.values()),
                   "chaos": sum(len(v) for v in chaos.entries.values())},
        "equity": {"clean": clean.final_equity, "chaos": chaos.final_equity},
        "venue_equity": {"clean": clean.wallet.get("totalEquity"),
                         "chaos": chaos.wallet.get("totalEquity")},
        "positions": {"clean": clean.final_positions, "chaos": chaos.final_positions},
        "dead_letters": {"clean": len(clean.dead_letters), "chaos": len(chaos.dead_letters)},
        "failures": failures,
        "notes": notes,
    }


def print_summary(s: dict) -> None:
    def pair(key: str) -> str:
        return f"clean {s[key]['clean']}, chaos {s[key]['chaos']}"
    _log("")
    _log(f"window        {s['window']} ({s['bar_times']} bar times × "
         f"{len(s['instruments'])} instruments), seed {s['seed']}")
    _log(f"kills         {s['kills_done']} of {s['kills_planned']}: "
         + ", ".join(f"{k} {n}" for k, n in s["kills_per_service"].items()))
    _log("restarts      " + ", ".join(f"{k} {n}" for k, n in s["restarts"].items() if n)
         + f" (total {sum(s['restarts'].values())})")
    _log(f"replay time   clean {s['replay_s']['clean']} s, chaos {s['replay_s']['chaos']} s")
    _log(f"venue orders  {pair('venue_orders')} (compared field by field); executions "
         f"{pair('venue_executions')}; fills {pair('fills')}")
    _log(f"events        {pair('events')} (every stream, fact by fact)")
    _log(f"equity        {pair('equity')} (portfolio); venue {pair('venue_equity')}")
    _log(f"positions     {pair('positions')}")
    _log(f"dead letters  {pair('dead_letters')}")
    for n in s["notes"]:
        _log(f"note          {n}")
    if s["failures"]:
        _log(f"BROKEN: {len(s['failures'])} check(s)")
        for f in s["failures"]:
            _log(f"  - {f}")
    else:
        _log("all invariants hold: same orders, fills, positions, equity and events as the "
             "clean run; no duplicate orderLinkId; every group drained; no dead letter")


# -- environment ------------------------------------------------------------------------------
async def _prepare_registry(db_url: str, force: bool) -> str | None:
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry

    engine = make_engine(db_url)
    try:
        reg = ModelRegistry(engine)
        if await reg.production("signal") is not None:
            return None
        cand = await reg.list("signal")
        if force and cand:
            await reg.promote(cand[-1].version, "chaos drill: a throwaway registry that trades")
            return cand[-1].version
        return None
    finally:
        await engine.dispose()


def _stop_embedded() -> None:
    """The embedded Redis :func:`prepare` used goes when the drill ends, as ``tm demo``'s does,
    unless another tm process (a running ``tm up``) still uses it."""
    from tm_common.embedded import leave_embedded_redis
    from tm_common.settings import CommonSettings

    if leave_embedded_redis(CommonSettings()):
        _log("stopped the embedded Redis this drill used")


def prepare(redis_url: str | None, database_url: str | None, data_dir: Path) -> tuple[str, str]:
    """Redis (the given URL, ``TM_REDIS_URL`` or the embedded one) and a migrated registry with
    models (trained with ``--fast`` into the throwaway registry when it has none)."""
    from tm_common.db.migrate import migrate
    from tm_common.settings import CommonSettings

    from tm_app.demo import has_models

    settings = CommonSettings()
    if redis_url is None:
        if settings.redis_url:
            redis_url = settings.redis_url
        else:
            from tm_common.embedded import ensure_embedded_redis, hold_embedded_redis
            hold_embedded_redis(settings)       # in use while the drill runs (see _stop_embedded)
            redis_url = ensure_embedded_redis(settings)
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as e:
        from urllib.parse import urlsplit
        where = urlsplit(redis_url).hostname or "?"          # never the URL: it may hold a password
        port = urlsplit(redis_url).port
        raise SystemExit(_fail(f"Redis unreachable at {where}:{port}: {type(e).__name__}", 2)) from e
    throwaway = database_url is None
    if database_url is None:
        (data_dir / "chaos").mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite+aiosqlite:///{(data_dir / 'chaos' / 'registry.db').resolve()}"
    migrate(database_url)
    if not asyncio.run(has_models(database_url)):
        _log("models: none in the registry; training the reduced configuration (--fast)")
        env = {**_env_without_tm(), "TM_DATABASE_URL": database_url}
        p = subprocess.run([sys.executable, "-m", "tm_trainer", "--no-publish", "--fast"],
                           check=False, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(_fail("training failed: " + (p.stderr or p.stdout)[-500:], 2))
    forced = asyncio.run(_prepare_registry(database_url, force=throwaway))
    if forced:
        _log(f"models: {forced} put in production in the throwaway registry (its gates refused "
             "it; the drill needs a window that trades)")
    return redis_url, database_url


def _env_without_tm() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TM_")}


def _fail(msg: str, code: int) -> int:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    return code


def _window(cfg: RunConfig) -> str:
    return f"{utc_minute(cfg.start_ms)} → {utc_minute(cfg.end_ms)} UTC"


def main(start: Annotated[str, typer.Option(help="Replay start, YYYY-MM-DD (UTC) or epoch ms.")]
         = "2025-01-01",
         bars: Annotated[int, typer.Option(help="Bar times to replay (4 h each).", min=3)] = 300,
         kills: Annotated[int, typer.Option(help="Kills during the chaos run.", min=0)] = 50,
         after_send: Annotated[int | None, typer.Option(
             help="Of which executor crashes between sending an order and handling the answer "
                  "(default kills // 10, at least 1).", min=0)] = None,
         seed: Annotated[int, typer.Option(help="Seeds the kill schedule.")] = 1,
         services: Annotated[str, typer.Option(help="Comma-separated kill targets.")]
         = ",".join(TARGETS),
         symbols: Annotated[str, typer.Option(help="Comma-separated.")] = "BTCUSDT,ETHUSDT,SOLUSDT",
         port_offset: Annotated[int, typer.Option(help="Added to every service port.")] = 600,
         redis_url: Annotated[str | None, typer.Option(help="Default: TM_REDIS_URL or the "
                                                       "embedded Redis.")] = None,
         database_url: Annotated[str | None, typer.Option(
             help="A registry to use as it is (default: a throwaway one that trades).")] = None,
         data_dir: Annotated[Path, typer.Option(help="Logs, the throwaway registry.")]
         = Path(".tm/chaos-drill"),
         shipped_thresholds: Annotated[bool, typer.Option(
             help="Keep the shipped cascade thresholds (the window may not trade).")] = False,
         keep_streams: Annotated[bool, typer.Option(help="Keep both runs' streams.")] = False,
         report: Annotated[Path | None, typer.Option(help="Write the summary as JSON.")] = None,
         ) -> None:
    """Kill -9 services during a mesh replay; compare with a clean run of the same window."""
    from tm_app.demo import parse_day_ms
    from tm_app.windows import window_end_ms, window_shortfall

    try:
        start_ms = parse_day_ms(start)
        targets = tuple(s.strip() for s in services.split(",") if s.strip())
        syms = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
        make_plan(seed, kills, bars, services=targets, after_send=after_send)   # validates
    except ValueError as e:
        raise SystemExit(_fail(str(e), 2)) from e
    end_ms = window_end_ms(start_ms, bars)
    if (why := window_shortfall(syms, start, start_ms, bars, fewer="--bars")) is not None:
        raise SystemExit(_fail(why, 2))
    data_dir.mkdir(parents=True, exist_ok=True)
    from tm_common.settings import CommonSettings

    embedded = redis_url is None and CommonSettings().redis_url is None
    redis_url, database_url = prepare(redis_url, database_url, data_dir)
    env = {**REPLAY_ENV, **({} if shipped_thresholds else TRADING_ENV)}
    cfg = RunConfig(start_ms=start_ms, end_ms=end_ms,
                    database_url=database_url, symbols=syms, extra_env=env)
    t0 = time.monotonic()
    try:
        try:
            summary = drill(cfg, redis_url=redis_url, data_dir=data_dir.resolve(), kills=kills,
                            seed=seed, services=targets, after_send=after_send,
                            port_offset=port_offset, keep_streams=keep_streams)
        except RuntimeError as e:               # a mesh that did not start or finish
            raise SystemExit(_fail(str(e), 1)) from e
        summary["total_s"] = round(time.monotonic() - t0, 1)
        print_summary(summary)
        if report is not None:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(json.dumps(summary, indent=2, default=str))
    finally:
        if embedded:
            _stop_embedded()
    if summary["failures"]:
        raise SystemExit(1)


if __name__ == "__main__":
    typer.run(main)
