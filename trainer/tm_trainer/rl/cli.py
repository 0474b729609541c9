"""``tm train rl`` (the main CLI mounts :data:`rl_app`) and ``python -m tm_trainer.rl``.

Builds (or loads from cache) the OOS signals, trains the SAC policy with the curriculum, validates
it against pure Kelly on the held-back windows, registers the version of kind ``rl`` with the gate
result and promotes it only if the gate passed. Database and Redis come from the ``TM_*``
settings (:class:`tm_common.settings.CommonSettings`): unset database = the local SQLite file.
Exit status: 0 trained (gate passed or not), 1 on errors, 2 on bad arguments.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from tm_common.instruments import parse_symbols

rl_app = typer.Typer(name="rl", help="Train the RL (SAC) sizing policy.", add_completion=False,
                     pretty_exceptions_show_locals=False)


@rl_app.callback(invoke_without_command=True)
def train_rl(
    symbols: Annotated[str, typer.Option(help="Comma-separated instruments.")] =
        "BTCUSDT,ETHUSDT,SOLUSDT",
    seed: Annotated[int, typer.Option(help="Seed of SAC, torch, numpy and the envs.")] = 7,
    phase1_steps: Annotated[int, typer.Option(help="Calm/cheap curriculum steps.")] = 20_000,
    phase2_steps: Annotated[int, typer.Option(help="Full-cost curriculum steps.")] = 40_000,
    val_windows: Annotated[int, typer.Option(help="Held-back walk-forward windows.")] = 6,
    max_fraction: Annotated[float, typer.Option(help="|position| at action 1, of equity.")] = 0.25,
    threads: Annotated[int, typer.Option(help="torch.set_num_threads (1: see train.py).")] = 1,
    history_dir: Annotated[str | None, typer.Option(help="History CSV folder.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="OOS cache (default <data_dir>/cache).")]
        = None,
    register: Annotated[bool, typer.Option("--register/--no-register",
                                           help="Write the registry entry.")] = True,
    promote: Annotated[bool, typer.Option("--promote/--no-promote",
                                          help="Promote when the gate passes.")] = True,
    publish: Annotated[bool, typer.Option("--publish/--no-publish",
                                          help="Publish models.promoted to Redis.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write a JSON report here.")] = None,
) -> None:
    """Train, validate against pure Kelly, gate, register (and promote if passed)."""
    from tm_common.settings import CommonSettings

    from tm_trainer.rl.cache import load_or_build
    from tm_trainer.rl.train import TrainConfig, publish_promotion, train_and_validate
    from tm_trainer.rl.train import register as reg

    if not 0 < max_fraction <= 1 or phase1_steps < 0 or phase2_steps < 1 or val_windows < 1:
        typer.echo("error: need 0 < max-fraction <= 1, steps >= 0 (phase 2 >= 1), "
                   "val-windows >= 1", err=True)
        raise typer.Exit(2)
    settings = CommonSettings(service_name="trainer")
    try:
        syms = list(parse_symbols(symbols))
    except ValueError as e:
        typer.echo(f"error: --symbols: {e}", err=True)
        raise typer.Exit(2) from None
    base = TrainConfig()
    env = replace(base.env, kelly=replace(base.env.kelly, max_fraction=max_fraction))
    cfg = replace(base, seed=seed, phase1_steps=phase1_steps, phase2_steps=phase2_steps,
                  val_windows=val_windows, torch_threads=threads, env=env)
    echo = typer.echo
    try:
        data = load_or_build(syms, cfg.wf, history_dir=history_dir,
                             cache_dir=cache_dir or Path(settings.data_dir) / "cache", log=echo)
        res = train_and_validate(data, cfg, log=echo)
        promoted = None
        if register:
            from tm_common.db import resolve_database_url
            from tm_common.db.migrate import migrate

            url = resolve_database_url(settings)
            migrate(url)
            promoted = asyncio.run(reg(url, res, cfg, promote=promote))
            echo(f"registered rl {res.version}" + (" and promoted" if promoted else
                                                   " (not promoted)"))
            if promoted is not None and publish:
                entry = asyncio.run(publish_promotion(settings, promoted))
                echo(f"published models.promoted {entry}")
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    if report is not None:
        report.write_text(json.dumps({"version": res.version, "gate": res.gate,
                                      "validation": res.validation, "timings_s": res.timings,
                                      "data_hash": res.data_hash,
                                      "promoted": promoted is not None}, indent=2))
