"""``tm train rl`` (the main CLI mounts :data:`rl_app`) and ``python -m tm_trainer.rl``.

Reads the history (``--source``: the database, i.e. what live ingest and ``tm backfill`` stored,
or the shipped CSV files; ``auto`` picks the database when it holds enough bars of every
instrument, as ``tm train`` does), builds (or loads from cache) the OOS signals, trains the SAC
policy with the curriculum, validates it against pure Kelly on the held-back windows, registers
the version of kind ``rl`` with the gate result and the data's source, hash and rows, and promotes
it only if the gate passed. Database and Redis come from the ``TM_*`` settings
(:class:`tm_trainer.settings.TrainerSettings`): unset database = the local SQLite file.
Exit status: 0 trained (gate passed or not), 1 on errors (one ``error:`` line), 2 on bad arguments.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from tm_common.instruments import parse_symbols

if TYPE_CHECKING:
    from tm_trainer.data import RawInputs

rl_app = typer.Typer(name="rl", help="Train the RL (SAC) sizing policy.", add_completion=False,
                     pretty_exceptions_show_locals=False, rich_markup_mode=None)


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
    source: Annotated[str, typer.Option(
        help="History: db (what ingest and `tm backfill` stored), files (the CSV history) or "
             "auto (db when it holds enough bars of every instrument, else files).")] = "auto",
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
    from tm_trainer.cli import fail, run_one_line
    from tm_trainer.rl.cache import load_or_build
    from tm_trainer.rl.inputs import bars_needed
    from tm_trainer.rl.train import TrainConfig, publish_promotion, train_and_validate
    from tm_trainer.rl.train import register as reg
    from tm_trainer.settings import TrainerSettings
    from tm_trainer.sources import SOURCES, rows_line

    if not 0 < max_fraction <= 1 or phase1_steps < 0 or phase2_steps < 1 or val_windows < 1:
        fail("need 0 < max-fraction <= 1, steps >= 0 (phase 2 >= 1), val-windows >= 1", 2)
    if source not in SOURCES:
        fail(f"--source must be one of {', '.join(SOURCES)}, not {source!r}", 2)
    settings = TrainerSettings()
    try:
        syms = list(parse_symbols(symbols))
    except ValueError as e:
        fail(f"--symbols: {e}", 2)
    base = TrainConfig()
    env = replace(base.env, kelly=replace(base.env.kelly, max_fraction=max_fraction))
    cfg = replace(base, seed=seed, phase1_steps=phase1_steps, phase2_steps=phase2_steps,
                  val_windows=val_windows, torch_threads=threads, env=env)
    echo = typer.echo
    url = None
    if register or source != "files":
        from tm_common.db import resolve_database_url
        from tm_common.db.migrate import migrate_async

        url = resolve_database_url(settings)
        run_one_line(migrate_async(url))
    inputs = run_one_line(_inputs(url, source, syms, bars_needed(cfg.wf, val_windows),
                                  history_dir))
    echo(f"data: {inputs.source}{rows_line(inputs)}; data hash {inputs.data_hash()[:16]}")
    try:
        data = load_or_build(syms, cfg.wf, history_dir=history_dir,
                             cache_dir=cache_dir or Path(settings.data_dir) / "cache", log=echo,
                             inputs=inputs)
        res = train_and_validate(data, cfg, log=echo, data_info=inputs.data_info())
        promoted = None
        if register:
            assert url is not None
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
                                      "data_hash": res.data_hash, "data": res.data,
                                      "promoted": promoted is not None}, indent=2))


async def _inputs(url: str | None, source: str, symbols: list[str], need: int,
                  history_dir: str | None) -> RawInputs:
    """The run's history (:func:`tm_trainer.rl.inputs.load_inputs`); ``url`` None: files only."""
    from tm_common.db import make_engine

    from tm_trainer.rl.inputs import load_inputs

    engine = None if url is None else make_engine(url)
    try:
        return await load_inputs(engine, source, symbols, need, history_dir, typer.echo)
    finally:
        if engine is not None:
            await engine.dispose()
