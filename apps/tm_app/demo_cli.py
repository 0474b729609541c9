"""``tm demo`` (also mounted as ``tm replay``: the mesh replay of a window of history against
the exchange simulator, with a report) and ``tm backtest`` (the same handlers in one process):
their options, the run configuration they check and build, the warm-up, and the ready-to-paste
redis-cli line ``tm demo`` prints. Errors are one line and a non-zero exit
(:func:`tm_app.cli.fail`)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from tm_app.cli import _ensure_models, _equity_opt, _out, _prepare, _settings, _symbols_opt, console, fail

StartOpt = Annotated[str, typer.Option(help="Replay start, YYYY-MM-DD (UTC) or epoch ms.")]
EndOpt = Annotated[str, typer.Option(help="Replay end (inclusive), YYYY-MM-DD or epoch ms.")]
OutOpt = Annotated[Path | None, typer.Option(help="Report folder (default reports/<mode>-<time>).")]
HistOpt = Annotated[Path | None, typer.Option(help="Folder of <SYMBOL>_4h.csv history files "
                                              "(default: the shipped data/history).")]
WarmOpt = Annotated[int | None, typer.Option(
    "--warmup-bars", help="4h bars replayed before --start to warm regime and risk (no orders, "
                          "not in the returns); default: what the services need; 0 = off.")]


def _config(start: str, end: str, database_url: str, symbols: str | None, equity: str,
            history: Path | None = None):
    from tm_common.history import HistoryFileError, load_bars, load_instrument

    from tm_app.backtest import RunConfig
    from tm_app.demo import parse_day_ms

    try:
        s, e = parse_day_ms(start), parse_day_ms(end)
    except ValueError as ex:
        fail(str(ex), 2)
    syms = _symbols_opt(symbols)
    eq = _equity_opt(equity)
    if e <= s:
        fail(f"--end ({end}) must be after --start ({start})", 2)
    if len(e_str := end) == 10:              # a day: include its last bar
        e += 86_400_000 - 4 * 3600_000
    if history is not None and not history.is_dir():
        fail(f"--history-dir {history} is not a folder", 2)
    for sym in syms:
        try:
            if not load_bars(sym, s, e, directory=history):
                fail(f"no shipped bars for {sym} between {start} and {e_str}", 2)
            load_instrument(sym, directory=history)     # a recorded file must parse
        except HistoryFileError as ex:
            fail(str(ex), 2)
    return RunConfig(start_ms=s, end_ms=e, database_url=database_url, symbols=syms,
                     initial_equity=eq, history_dir=str(history) if history else None)


def _warmup(cfg, bars: int | None):
    """``cfg`` with its warm-up (:func:`tm_app.warmup.plan`), said on the console."""
    from tm_app.warmup import plan

    try:
        cfg, warm = plan(cfg, bars)
    except ValueError as e:
        fail(str(e), 2)
    console.print(f"warm-up: {warm.describe()}")
    return cfg, warm


def _redis_cli(settings, redis_url: str, namespace: str) -> str:
    """A ready-to-paste redis-cli line for ``namespace``: on the embedded server as its
    ``tm-admin`` user, the password read from its file (never printed)."""
    from tm_app.redis_cli import embedded_admin, redis_cli_line

    if settings.redis_url:
        return redis_cli_line(redis_url, namespace)
    url, password_file = embedded_admin(redis_url, Path(settings.data_dir).expanduser().resolve())
    return redis_cli_line(url, namespace, password_file=password_file)


def demo(start: StartOpt = "2025-01-01", end: EndOpt = "2025-06-30",
         symbols: Annotated[str | None, typer.Option(help="Comma-separated.")] = None,
         equity: Annotated[str, typer.Option(help="Initial equity, USDT.")] = "100000",
         fast_train: Annotated[bool, typer.Option("--fast-train/--full-train",
                                                  help="Reduced walk-forward if training is needed.")] = False,
         port_offset: Annotated[int, typer.Option(help="Added to every service port.")] = 0,
         shadow: Annotated[str, typer.Option(
             help="Signal candidate to run in a shadow book beside production: a version, "
                  "'awaiting-evidence' (one whose gates passed, collecting evidence), 'newest-refused' "
                  "(the newest one the gates kept out), 'auto' (the first, else the second) or "
                  "'none'.")
         ] = "auto",
         history_dir: HistOpt = None, out: OutOpt = None, warmup_bars: WarmOpt = None) -> None:
    """The main job: paper-trading replay of real history through the whole mesh, with a report.
    A signal candidate (by default the newest whose gates passed, else the newest refused) trades
    in a shadow book beside production; the report shows both side by side."""
    from tm_app.demo import report, shadow_candidate
    from tm_app.mesh import new_namespace, run_mesh

    t0 = time.monotonic()
    settings = _settings()
    cfg = _config(start, end, "", symbols, equity, history_dir)   # bad input: fail before
    if warmup_bars is not None and warmup_bars < 0:                 # starting anything
        fail(f"--warmup-bars must be >= 0, got {warmup_bars}", 2)
    redis_url, db_url = _prepare(settings)
    cfg = dataclasses.replace(cfg, database_url=db_url)
    _ensure_models(db_url, fast_train, symbols=cfg.symbols, history_dir=cfg.history_dir,
                   start_ms=cfg.start_ms)
    try:
        challenger = shadow_candidate(db_url, shadow)
    except LookupError as e:
        fail(f"--shadow: {e}", 2)
    cfg, warm = _warmup(cfg, warmup_bars)
    data_dir = Path(settings.data_dir) / "mesh"
    data_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"starting the mesh (logs in {data_dir / 'logs'})"
                  + (f"; shadow book: signal candidate {challenger}" if challenger else ""))
    last = [0.0]

    def progress(published: int, _total: int) -> None:
        if time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            console.print(f"  replay: {published} bars published")
    namespace = new_namespace()
    console.print(f"streams, while it runs: {_redis_cli(settings, redis_url, namespace)}",
                  soft_wrap=True, markup=False, highlight=False)   # one line, ready to paste
    try:
        run = run_mesh(cfg, redis_url=redis_url, data_dir=data_dir, port_offset=port_offset,
                       log=lambda m: console.print(m), progress=progress, shadow=challenger,
                       namespace=namespace)
    except RuntimeError as e:
        fail(str(e))
    meta = {"mode": "mesh replay (processes, exchange sim)", "window": f"{start} → {end}",
            "replay_seconds": round(run.secs, 1), "namespace": run.namespace,
            "restarts": json.dumps(run.restarts), "total_seconds": round(time.monotonic() - t0, 1),
            "warm-up": warm.describe()}
    report(run.record, cfg, _out(out, "demo"), meta, shadow=run.shadow)
    if settings.redis_url is None:
        # the report is written: the embedded Redis this run started goes too, unless another
        # tm process (a running `tm up`) still uses it
        from tm_common.embedded import leave_embedded_redis

        if leave_embedded_redis(settings):
            console.print("stopped the embedded Redis (the run's streams went with it; run with "
                          "TM_REDIS_URL, or beside `tm up`, to keep them)")


def backtest(start: StartOpt = "2025-01-01", end: EndOpt = "2025-06-30",
             symbols: Annotated[str | None, typer.Option(help="Comma-separated.")] = None,
             equity: Annotated[str, typer.Option(help="Initial equity, USDT.")] = "100000",
             history_dir: HistOpt = None, out: OutOpt = None,
             warmup_bars: WarmOpt = None) -> None:
    """The same handlers in one process on the in-memory bus with the in-process venue."""
    from tm_app.demo import backtest as run

    settings = _settings()
    from tm_common.db import resolve_database_url
    from tm_common.db.migrate import migrate
    from tm_common.logging import configure_logging

    # every handler runs in this process: its INFO lines would bury the summary (the mesh's
    # services log to files); TM_LOG_LEVEL set explicitly wins
    configure_logging(settings.model_copy(update={
        "log_level": os.environ.get("TM_LOG_LEVEL", "WARNING"), "log_json": False}))
    db_url = resolve_database_url(settings)
    migrate(db_url)
    cfg, warm = _warmup(_config(start, end, db_url, symbols, equity, history_dir), warmup_bars)
    run(cfg, _out(out, "backtest"), warm)
