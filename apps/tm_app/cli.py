"""``tm demo``, ``tm backtest``, ``tm streams``, ``tm report`` (and, from ``tm_app.operate``,
``tm kill``, ``tm breaker``, ``tm audit``): the commands that run or inspect the whole system. Errors are one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True, soft_wrap=True)   # an error stays one line

StartOpt = Annotated[str, typer.Option(help="Replay start, YYYY-MM-DD (UTC) or epoch ms.")]
EndOpt = Annotated[str, typer.Option(help="Replay end (inclusive), YYYY-MM-DD or epoch ms.")]
OutOpt = Annotated[Path | None, typer.Option(help="Report folder (default reports/<mode>-<time>).")]
HistOpt = Annotated[Path | None, typer.Option(help="Folder of <SYMBOL>_4h.csv history files "
                                              "(default: the shipped data/history).")]
WarmOpt = Annotated[int | None, typer.Option(
    "--warmup-bars", help="4h bars replayed before --start to warm regime and risk (no orders, "
                          "not in the returns); default: what the services need; 0 = off.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _settings():
    from tm_common.settings import CommonSettings

    try:
        return CommonSettings()
    except Exception as e:  # noqa: BLE001 - a settings error is one line
        fail(f"bad configuration: {str(e).splitlines()[0]}", 2)


def _symbols_opt(symbols: str | None) -> tuple[str, ...]:
    """``--symbols`` (None: the default symbols), or exit 2 with the reason."""
    from tm_common.instruments import DEFAULT_SYMBOLS, parse_symbols

    try:
        return parse_symbols(DEFAULT_SYMBOLS if symbols is None else symbols)
    except ValueError as e:
        fail(f"--symbols: {e}", 2)


def _equity_opt(equity: str) -> Decimal:
    """``--equity`` as a positive finite Decimal (USDT), or exit 2 with the reason."""
    try:
        eq = Decimal(equity)
    except ArithmeticError:
        fail(f"--equity must be a number of USDT, got {equity!r}", 2)
    if not eq.is_finite() or eq <= 0:
        fail(f"--equity must be positive, got {equity!r}", 2)
    return eq


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


def _prepare(settings) -> tuple[str, str]:
    """Redis URL and database URL (embedded defaults when unset), migrated; one-line errors."""
    from tm_common.db import resolve_database_url
    from tm_common.db.migrate import migrate

    from tm_app.stack.stack import StackSettings  # noqa: F401 - validates imports early

    if settings.redis_url:
        redis_url = settings.redis_url
        import redis
        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
        except Exception as e:  # noqa: BLE001
            fail(f"Redis unreachable at the configured TM_REDIS_URL: {type(e).__name__}")
    else:
        from tm_common.embedded import ensure_embedded_redis, hold_embedded_redis

        from tm_app.stack.signals import stop_embedded_redis_if_signalled
        hold_embedded_redis(settings)       # in use while this process runs (tm down/SIGTERM)
        redis_url = ensure_embedded_redis(settings)
        stop_embedded_redis_if_signalled(settings)
    db_url = resolve_database_url(settings)
    try:
        migrate(db_url)
    except Exception as e:  # noqa: BLE001
        fail(f"database unreachable or not migratable: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return redis_url, db_url


def _redis_cli(settings, redis_url: str, namespace: str) -> str:
    """A ready-to-paste redis-cli line for ``namespace``: on the embedded server as its
    ``tm-admin`` user, the password read from its file (never printed)."""
    from tm_app.redis_cli import embedded_admin, redis_cli_line

    if settings.redis_url:
        return redis_cli_line(redis_url, namespace)
    url, password_file = embedded_admin(redis_url, Path(settings.data_dir).expanduser().resolve())
    return redis_cli_line(url, namespace, password_file=password_file)


def _ensure_models(db_url: str, fast: bool, *, symbols: tuple[str, ...] | None = None,
                   history_dir: str | None = None, start_ms: int | None = None) -> None:
    """Train the ``symbols`` (default: the shipped three) from ``history_dir`` (default: the
    shipped files) when the registry has no signal model, with the cut-off at the demo's
    2025-01-01 or the replay's ``start_ms`` if earlier (the replay stays out of sample). A
    failed training is one ``error:`` line saying what to do."""
    from tm_common.instruments import DEFAULT_SYMBOLS

    from tm_app.demo import DEFAULT_START, DEMO_TRAIN_ARGS, has_models, model_instruments, parse_day_ms

    if asyncio.run(has_models(db_url)):
        console.print("models: using the registry's (train again with `tm train`)")
        found = asyncio.run(model_instruments(db_url)) if symbols else None
        missing = [s for s in symbols or () if found and found[1] and s not in found[1]]
        if found and missing:
            console.print(f"models: {found[0]} was trained on {', '.join(found[1])}, not on "
                          f"{', '.join(missing)}: those trade flat; train them with `tm train "
                          f"--instruments {','.join(symbols or ())} --history-dir <folder>`")
        return
    syms = tuple(symbols or DEFAULT_SYMBOLS)
    args = list(DEMO_TRAIN_ARGS)
    cut = DEFAULT_START
    if start_ms is not None and start_ms < parse_day_ms(DEFAULT_START):
        cut = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y-%m-%d")
        args[args.index("--train-end") + 1] = cut
    where = f"the history in {history_dir}" if history_dir else "the shipped history"
    console.print(f"models: none in the registry; training {', '.join(syms)} on {where} "
                  f"(cut-off {cut}, so the replay is out-of-sample)")
    cmd = [sys.executable, "-m", "tm_trainer", "--no-publish", *args,
           "--instruments", ",".join(syms)] + \
        (["--history-dir", str(history_dir)] if history_dir else []) + (["--fast"] if fast else [])
    env = {**os.environ, "TM_DATABASE_URL": db_url}
    # the trainer's progress passes through; its error line becomes part of ours (one line)
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    for line in proc.stderr or ():
        if line.startswith("error: "):
            errors.append(line.strip().removeprefix("error: "))
        else:
            sys.stderr.write(line)
    if (rc := proc.wait()) != 0:
        why = errors[-1] if errors else f"the trainer exited with {rc}"
        fail(f"training {', '.join(syms)} from {where} failed ({why}); give --history-dir a "
             f"folder with more <SYMBOL>_4h.csv history before {cut}, or train first with "
             f"`tm train --instruments {','.join(syms)} --history-dir <folder>`")


def _out(out: Path | None, mode: str) -> Path:
    return out or Path("reports") / f"{mode}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def demo(start: StartOpt = "2025-01-01", end: EndOpt = "2025-06-30",
         symbols: Annotated[str | None, typer.Option(help="Comma-separated.")] = None,
         equity: Annotated[str, typer.Option(help="Initial equity, USDT.")] = "100000",
         fast_train: Annotated[bool, typer.Option("--fast-train/--full-train",
                                                  help="Reduced walk-forward if training is needed.")] = False,
         port_offset: Annotated[int, typer.Option(help="Added to every service port.")] = 0,
         shadow: Annotated[str, typer.Option(
             help="Signal candidate to run in a shadow book beside production: a version, "
                  "'newest-refused' (the newest one the gates kept out) or 'none'.")
         ] = "newest-refused",
         history_dir: HistOpt = None, out: OutOpt = None, warmup_bars: WarmOpt = None) -> None:
    """The main job: paper-trading replay of real history through the whole mesh, with a report.
    The newest refused signal candidate trades in a shadow book beside production; the report
    shows both side by side."""
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
        from tm_common.embedded import release_embedded_redis, stop_embedded_redis

        release_embedded_redis(settings)
        if stop_embedded_redis(settings, if_unused=True):
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


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def streams(as_json: JsonOpt = False) -> None:
    """Length, consumer groups, lag, pending and dead letters of every stream."""
    from tm_common.bus.redis import RedisStreamsBus
    from tm_common.bus.streams import ALL_STREAMS, dlq

    settings = _settings()
    redis_url, _ = (settings.redis_url, None) if settings.redis_url else _prepare(settings)

    async def collect():
        bus = RedisStreamsBus(redis_url, prefix=settings.namespace)
        try:
            rows = []
            for s in ALL_STREAMS:
                groups = await bus.group_info(s)
                rows.append((s, await bus.length(s), groups, await bus.length(dlq(s))))
            return rows
        finally:
            await bus.close()
    try:
        rows = asyncio.run(collect())
    except Exception as e:  # noqa: BLE001
        fail(f"Redis unreachable: {type(e).__name__}: {e}")
    if as_json:
        typer.echo(json.dumps({"namespace": settings.namespace, "streams": [
            {"stream": s, "length": n, "dead_letters": d,
             "groups": [{k: g.get(k) for k in ("name", "lag", "pending", "consumers")}
                        for g in groups]} for s, n, groups, d in rows]}, indent=2))
        return
    console.print(streams_table(settings.namespace, rows))


def streams_table(namespace: str, rows: list) -> Table:
    """(stream, length, groups, dead letters) rows as a table that folds to 80 columns."""
    t = Table(title=f"streams ({namespace})")
    for c, justify in (("stream", "left"), ("length", "right"), ("groups (lag/pending)", "left"),
                       ("dead letters", "right")):
        t.add_column(c, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s, n, groups, d in rows:
        g = ", ".join(f"{x['name']} ({x['lag']}/{x['pending']})" for x in groups) or "–"
        t.add_row(s, str(n), g, str(d))
    return t


def report_cmd(path: Annotated[Path, typer.Argument(help="A report folder or report.json.")],
               as_json: Annotated[bool, typer.Option(
                   "--json", help="Print the report's numbers (report.json) instead.")] = False
               ) -> None:
    """Print the summary of a written report."""
    from tm_app.demo import summary_table

    f = path / "report.json" if path.is_dir() else path
    if not f.is_file():
        fail(f"no report at {f}", 2)
    try:
        doc = json.loads(f.read_text())
    except ValueError as e:
        fail(f"{f}: not a report ({e})", 2)
    if not isinstance(doc, dict) or not isinstance(doc.get("stats"), dict):
        fail(f"{f}: not a report (no stats)", 2)
    if as_json:
        typer.echo(json.dumps(_nulls(doc), indent=2, allow_nan=False, default=str))
        return
    console.print(summary_table(doc, doc.get("meta", {}).get("mode", "run")))


def _nulls(x: object) -> object:
    """``x`` with NaN/±inf floats as ``None`` (JSON has no NaN)."""
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: _nulls(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nulls(v) for v in x]
    return x


def shadow_cmd(candidate: Annotated[str, typer.Option(
                   help="Signal version to shadow, or 'newest-refused'.")] = "newest-refused",
               mode: Annotated[str | None, typer.Option(
                   help="paper or live (the evidence it gives; default TM_MODE).")] = None,
               port: Annotated[int | None, typer.Option(help="HTTP port (default 8109).")] = None
               ) -> None:
    """Run a shadow book in the foreground (Ctrl-C stops it): the candidate trades production's
    market events (TM_NAMESPACE) on its own paper account, under <namespace>shadow:<candidate>:,
    and its record is written to the registry for `tm models promote`."""
    from tm_app.shadow.__main__ import main
    from tm_app.shadow.config import ShadowSettings

    if mode is not None and mode not in ("paper", "live", "replay"):
        fail(f"--mode must be paper, live or replay, got {mode!r}", 2)
    os.environ["TM_SHADOW_CANDIDATE"] = candidate
    if mode is not None:
        os.environ["TM_MODE"] = mode
    if port is not None:
        os.environ["TM_HTTP_PORT"] = str(port)
    from pydantic import ValidationError
    try:
        ShadowSettings().namespace_for(candidate)
    except ValidationError as e:
        err0 = e.errors()[0]
        fail(f"bad shadow configuration: {'.'.join(map(str, err0['loc']))}: {err0['msg']}", 2)
    except ValueError as e:
        fail(f"bad shadow configuration: {e}", 2)
    raise typer.Exit(main())


def register(app: typer.Typer) -> None:
    """Mount these commands (and the trainer's) on the ``tm`` app."""
    app.command("demo")(demo)
    app.command("replay", help="Mesh replay of a window against the sim (same as demo).")(demo)
    app.command("backtest")(backtest)
    from tm_app.paper import paper
    app.command("paper")(paper)
    app.command("streams")(streams)
    app.command("report")(report_cmd)
    app.command("shadow")(shadow_cmd)
    from tm_app.backfill import backfill_command
    app.command("backfill")(backfill_command)
    from tm_app.operate import register as register_operator
    register_operator(app)
    try:
        from tm_app.research import research
        app.command("research")(research)
        from tm_trainer.cli import models_app, train_app
        from tm_trainer.rl.cli import rl_app
    except ImportError:
        return
    train_app.add_typer(rl_app)
    app.add_typer(train_app)
    app.add_typer(models_app)
