"""What the ``tm`` commands that run or inspect the whole system share, and :func:`register`,
which mounts them: ``tm demo``/``tm replay`` and ``tm backtest`` (:mod:`tm_app.demo_cli`),
``tm paper`` (:mod:`tm_app.paper`), ``tm streams`` and ``tm report`` (:mod:`tm_app.inspect_cli`),
``tm shadow`` (:mod:`tm_app.shadow_cli`), ``tm backfill``, and, from ``tm_app.operate``,
``tm kill``, ``tm breaker``, ``tm audit``. Shared here: the consoles, :func:`fail`, the settings,
the ``--symbols``/``--equity`` checks, Redis and database preparation and the models' first
training. Errors are one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True, soft_wrap=True)   # an error stays one line


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _settings():
    from pydantic import ValidationError
    from tm_common.settings import CommonSettings, settings_error

    try:
        return CommonSettings()
    except ValidationError as e:
        fail(f"bad configuration: {settings_error(CommonSettings, e)}", 2)


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


def register(app: typer.Typer) -> None:
    """Mount these commands (and the trainer's) on the ``tm`` app."""
    from tm_app.demo_cli import backtest, demo
    app.command("demo")(demo)
    app.command("replay", help="Mesh replay of a window against the sim (same as demo).")(demo)
    app.command("backtest")(backtest)
    from tm_app.paper import paper
    app.command("paper")(paper)
    from tm_app.inspect_cli import report_cmd, streams
    app.command("streams")(streams)
    app.command("report")(report_cmd)
    from tm_app.shadow_cli import shadow_cmd
    app.command("shadow")(shadow_cmd)
    from tm_app.backfill import backfill_command
    app.command("backfill")(backfill_command)
    from tm_app.operate import register as register_operator
    register_operator(app)
    try:
        from tm_app.research import research
        app.command("research")(research)
        from tm_trainer.models_cli import models_app
        from tm_trainer.rl.cli import rl_app
        from tm_trainer.train_cli import train_app
    except ImportError:
        return
    train_app.add_typer(rl_app)
    app.add_typer(train_app)
    app.add_typer(models_app)
