"""``tm train`` (``train_app``; ``python -m tm_trainer`` runs it too): its options, checked
into a :class:`tm_trainer.config.TrainConfig`, then walk-forward training, the gates' verdict,
registration and promotion (:func:`_train`), with the training data's source and cut-off
(:func:`_inputs`). Expected failures are one ``error:`` line (:func:`tm_trainer.cli.fail`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from tm_common.instruments import parse_symbols
from tm_quant.labels import parse_horizon

from tm_trainer.cli import _publisher, _registry, _settings, console, fail, parse_time_ms, run_one_line
from tm_trainer.config import DEFAULT_INSTRUMENTS, GateConfig, TrainConfig
from tm_trainer.data import DataError
from tm_trainer.promotion import PromotionRefused, min_forward_days
from tm_trainer.sources import SOURCES

if TYPE_CHECKING:
    from tm_trainer.registry_ops import Outcome

train_app = typer.Typer(name="train", help="Walk-forward training, gates, registry.",
                        invoke_without_command=True, add_completion=False,
                        pretty_exceptions_show_locals=False, rich_markup_mode=None)


@train_app.callback()
def train(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Seed of Boruta, XGBoost and the HMM.")] = 7,
    horizon: Annotated[str, typer.Option(help="Label horizon: 1d, 3d, 1w or a number of 4 h "
                                         "bars (>= 1).")] = "1d",
    label: Annotated[str, typer.Option(help="Label: log_return (the forward log return) or "
                                       "vol_scaled (in units of rv_42 over the horizon).")] =
        "log_return",
    turnover_budget: Annotated[float | None, typer.Option(
        help="Turnover budget of the evaluated strategy, units of position change a year (a "
             "flip is 2): hysteresis + a minimum holding time meet it; the gates judge that "
             "strategy. Default: none (re-decide every bar).")] = None,
    windows: Annotated[int | None, typer.Option(help="Walk-forward test windows "
                                                "(default 40; 4 with --fast).")] = None,
    train_end: Annotated[str | None, typer.Option(
        help="Training cut-off, YYYY-MM-DD (UTC) or epoch ms; default: the close of the newest "
             "bar in the data minus the purge gap.")] = None,
    source: Annotated[str, typer.Option(
        help="Training data: db (what ingest and `tm backfill` stored), files (the CSV "
             "history) or auto (db when it holds enough bars of every instrument to train on, "
             "else files).")] = "auto",
    instruments: Annotated[str, typer.Option(help="Comma-separated symbols.")] =
        ",".join(DEFAULT_INSTRUMENTS),
    fast: Annotated[bool, typer.Option("--fast", help="Reduced configuration for CI.")] = False,
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Register only.")] = False,
    min_shadow_days: Annotated[float | None, typer.Option(
        help="Forward (paper/live) shadow days a signal model needs before it is promoted "
             "(it waits as a candidate until then; 0: on the gates alone) "
             "[env TM_PROMOTE_MIN_SHADOW_DAYS; default 28].")] = None,
    update: Annotated[bool, typer.Option("--update", help="Continue the production signal "
                                         "model on newer data (weekly update).")] = False,
    regime: Annotated[bool, typer.Option("--regime/--no-regime", help="Also train the regime "
                                         "HMMs.")] = True,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Publish "
                                          "model.promoted on Redis.")] = True,
    history_dir: Annotated[Path | None, typer.Option(help="CSV history folder.")] = None,
    report_json: Annotated[Path | None, typer.Option(help="Write the OOS report here.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    gate_min_ic: Annotated[float, typer.Option(
        envvar="TM_TRAIN_GATE_MIN_IC", help="Promotion gate: OOS mean IC at least this "
        "(recorded with the model).")] = GateConfig.min_ic,
    gate_min_sharpe: Annotated[float, typer.Option(
        envvar="TM_TRAIN_GATE_MIN_SHARPE", help="Promotion gate: OOS Sharpe after costs above "
        "this (recorded with the model).")] = GateConfig.min_sharpe,
    gate_min_dsr: Annotated[float, typer.Option(
        envvar="TM_TRAIN_GATE_MIN_DSR", help="Promotion gate: deflated Sharpe ratio (over the "
        "trials registered on the same data) at least this.")] = GateConfig.min_dsr,
    gate_min_timing_t: Annotated[float, typer.Option(
        envvar="TM_TRAIN_GATE_MIN_TIMING_T", help="Promotion gate: t statistic of the return "
        "beyond a constant exposure of the average position at least this.")] =
        GateConfig.min_timing_t,
    gate_min_positive_share: Annotated[float, typer.Option(
        envvar="TM_TRAIN_GATE_MIN_POSITIVE_SHARE", help="Promotion gate: share of OOS "
        "sub-periods with a positive net return at least this.")] = GateConfig.min_positive_share,
    family: Annotated[str, typer.Option(
        help="Signal model family: xgboost (built-in) or one registered in "
             "tm_quant/families/__init__.py, e.g. logistic (recorded with the model).")] = "xgboost",
) -> None:
    """Promote a waiting candidate whose forward shadow evidence now suffices; then train
    (walk-forward + gates), register the candidates, and promote those that pass (a signal model
    waits for its forward evidence first)."""
    if ctx.invoked_subcommand is not None:  # e.g. `tm train rl ...` mounted below this group
        return
    try:
        syms = parse_symbols(instruments)
        end: dict[str, Any] = {"train_end_ms": parse_time_ms(train_end)} if train_end else {}
        if not all(math.isfinite(x) for x in (gate_min_ic, gate_min_sharpe, gate_min_dsr,
                                              gate_min_timing_t, gate_min_positive_share)):
            raise ValueError("the --gate-min-* options must be finite numbers")
        gates = GateConfig(min_ic=gate_min_ic, min_sharpe=gate_min_sharpe, min_dsr=gate_min_dsr,
                           min_timing_t=gate_min_timing_t,
                           min_positive_share=gate_min_positive_share)
        cfg = TrainConfig(instruments=syms, horizon_bars=parse_horizon(horizon), label=label,
                          turnover_budget_per_year=turnover_budget,
                          seed=seed, history_dir=history_dir, gates=gates, **end)
        if fast:
            cfg = cfg.fast()
        if windows is not None:
            cfg = replace(cfg, n_windows=windows)  # __post_init__ checks it again
        if source not in SOURCES:
            raise ValueError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
        check_family(family, update)
        min_days = min_forward_days(min_shadow_days)
    except (ValueError, typer.BadParameter, PromotionRefused) as e:
        fail(str(e), 2)
    if cfg.gates != GateConfig():
        typer.echo(f"gates changed from the defaults ({gates_text(GateConfig())}) to "
                   f"{gates_text(cfg.gates)}: a configuration choice, recorded with the model")
    settings = _settings()
    run_one_line(_train(cfg, settings, update=update, promote=not no_promote, min_days=min_days,
                        regime=regime and not update, publish=publish, report_json=report_json,
                        show_progress=progress, source=source,
                        cut_off_given=train_end is not None, family=family))


def say_outcome(out: Outcome) -> None:
    for v in out.registered:
        typer.echo(f"registered {v}")
    for ev in out.promoted:
        typer.echo(f"promoted {ev.kind} {ev.version} (previous {ev.previous_version})")
    for line in out.kept + out.publish_errors:
        typer.echo(line)


def gates_text(g: GateConfig) -> str:
    """The gates in one phrase (``tm train``'s verdict line)."""
    return (f"IC >= {g.min_ic}, Sharpe > {g.min_sharpe}, deflated Sharpe >= {g.min_dsr}, "
            f"timing t >= {g.min_timing_t}, positive in >= {g.min_positive_share} of "
            f"{g.consistency_periods} sub-periods")


def check_family(name: str, update: bool) -> None:
    """``--family``: registered (:func:`tm_quant.families.get`), and the built-in with
    ``--update``. Raises ``ValueError`` with the known names."""
    from tm_quant import families

    if name != families.BUILTIN:
        families.get(name)              # UnknownFamily (a ValueError) lists the known names
        if update:
            raise ValueError(f"--update continues the built-in xgboost family; family {name!r} "
                             "is retrained in full (drop --update)")


async def _inputs(cfg: TrainConfig, engine, source: str, cut_off_given: bool):
    """The source actually used, the configuration with its cut-off, and the data (None: the
    pipeline reads the files itself)."""
    from tm_trainer.sources import (
        bars_needed,
        db_last_bar_ms,
        default_train_end_ms,
        files_last_bar_ms,
        load_db_inputs,
        resolve_source,
    )

    source = await resolve_source(engine, source, cfg.instruments, bars_needed(cfg), typer.echo)
    if not cut_off_given:
        last = (await db_last_bar_ms(engine, cfg.instruments) if source == "db" else
                await asyncio.to_thread(files_last_bar_ms, cfg.instruments, cfg.history_dir))
        cfg = replace(cfg, train_end_ms=default_train_end_ms(last, cfg.purge_bars))
    inputs = None
    if source == "db":
        inputs = await load_db_inputs(engine, cfg.instruments, end_ms=cfg.train_end_ms)
    return source, cfg, inputs


async def _train(cfg: TrainConfig, settings, *, update: bool, promote: bool, min_days: float,
                 regime: bool,
                 publish: bool, report_json: Path | None, show_progress: bool,
                 source: str = "files", cut_off_given: bool = True,
                 family: str = "xgboost") -> None:
    from tm_trainer.pipeline import train as run_train
    from tm_trainer.registry_ops import promote_ready, record
    from tm_trainer.report import honest_lines, markdown, progress_bars, rich_table
    from tm_trainer.sources import rows_line

    registry, engine = await _registry(settings)
    try:
        if promote:       # what earned its promotion in shadow since the last run, first
            say_outcome(await promote_ready(registry, publish=_publisher(settings, publish),
                                            min_days=min_days))
        source, cfg, inputs = await _inputs(cfg, engine, source, cut_off_given)
        typer.echo(f"data: {source}{rows_line(inputs)}; cut-off "
                   f"{dt.datetime.fromtimestamp(cfg.train_end_ms / 1000, tz=dt.UTC):%Y-%m-%d %H:%M} UTC")
        with progress_bars(cfg.n_windows, len(cfg.instruments), enabled=show_progress) as cb:
            if update:
                from tm_trainer.update import train_update
                prod = await registry.production("signal")
                if prod is None:
                    raise DataError("--update needs a production signal model; none is promoted")
                result = await asyncio.to_thread(train_update, cfg, prod.bundle(), cb,
                                                 inputs=inputs)
            else:
                from tm_trainer.pipeline import prior_trials_of
                prior = prior_trials_of(await registry.list("signal"))
                result = await asyncio.to_thread(run_train, cfg, cb, regime=regime, inputs=inputs,
                                                 family=family, prior_trials=prior)
        console.print(rich_table(result.report))
        verdict = "PASS" if result.gate_passed else "FAIL: " + "; ".join(result.reasons)
        typer.echo(f"signal family: {result.family}")
        for line in honest_lines(result.report):
            typer.echo(line)
        typer.echo(f"gates ({gates_text(cfg.gates)}): {verdict}")
        if report_json:
            report_json.parent.mkdir(parents=True, exist_ok=True)
            report_json.write_text(json.dumps({"version": result.signal_version,
                                               "family": result.family,
                                               "gate_passed": result.gate_passed,
                                               "reasons": result.reasons, "report": result.report,
                                               "timings_s": result.timings_s,
                                               "markdown": markdown(result.report)}, indent=1))
        say_outcome(await record(registry, result, promote=promote, min_days=min_days,
                                 publish=_publisher(settings, publish)))
    finally:
        await engine.dispose()
