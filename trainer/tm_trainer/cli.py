"""Command line: ``train_app`` (``tm train``) and ``models_app`` (``tm models list|promote|rollback``).

The main ``tm`` CLI mounts them (``app.add_typer(train_app, name="train")``,
``app.add_typer(models_app, name="models")``); ``python -m tm_trainer`` runs ``train_app``.
Settings are ``TM_*`` variables (:class:`tm_trainer.settings.TrainerSettings`: database URL, Redis
URL, namespace). Expected failures print one ``error:`` line and exit 2 (bad arguments) or 1
(missing data, database or registry errors); no tracebacks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from tm_common.errors import TradeMatrixError
from tm_common.instruments import parse_symbols
from tm_common.models.bundle import BundleError
from tm_common.models.registry import ModelRegistry, RegistryError
from tm_quant.labels import parse_horizon

from tm_trainer.config import DEFAULT_INSTRUMENTS, GateConfig, TrainConfig
from tm_trainer.data import DataError
from tm_trainer.sources import SOURCES

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

train_app = typer.Typer(name="train", help="Walk-forward training, gates, registry.",
                        invoke_without_command=True, add_completion=False,
                        pretty_exceptions_show_locals=False)
models_app = typer.Typer(name="models", help="Model registry: list, promote, roll back.",
                         no_args_is_help=True, add_completion=False,
                         pretty_exceptions_show_locals=False)
console = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_time_ms(text: str) -> int:
    """``YYYY-MM-DD`` (UTC midnight) or integer ms since the epoch."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        d = dt.datetime.strptime(t, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError as e:
        raise typer.BadParameter(f"{text!r} is not YYYY-MM-DD or epoch ms") from e
    return int(d.timestamp() * 1000)


def _settings():
    from pydantic import ValidationError

    from tm_trainer.settings import TrainerSettings
    try:
        return TrainerSettings()
    except ValidationError as e:
        fail(f"bad TM_* setting: {e.errors()[0].get('loc')} {e.errors()[0].get('msg')}", 2)


async def _registry(settings) -> tuple[ModelRegistry, AsyncEngine]:
    from tm_common.db import make_engine, resolve_database_url
    from tm_common.db.migrate import migrate_async

    url = resolve_database_url(settings)
    await migrate_async(url)
    engine = make_engine(url)
    return ModelRegistry(engine), engine


def _publisher(settings, enabled: bool):
    if not enabled:
        return None
    from tm_trainer.registry_ops import publish_redis
    return lambda ev: publish_redis(settings, ev)


def run_one_line(coro):
    """``asyncio.run(coro)``; an expected failure is one ``error:`` line and exit status 1."""
    try:
        return asyncio.run(coro)
    except (DataError, RegistryError, BundleError, TradeMatrixError) as e:
        fail(str(e))
    except (OSError, ConnectionError) as e:
        fail(f"cannot reach the database or Redis: {e}")
    except Exception as e:  # noqa: BLE001 - any other failure: one line, not a traceback
        first = (str(e).splitlines() or [""])[0]
        if type(e).__module__.startswith(("sqlalchemy", "asyncpg", "sqlite3", "alembic")):
            fail(f"database error: {type(e).__name__}: {first}")
        fail(f"{type(e).__name__}: {first}")


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
    """Train (walk-forward + gates), register the candidates, promote those that pass."""
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
    except (ValueError, typer.BadParameter) as e:
        fail(str(e), 2)
    if cfg.gates != GateConfig():
        typer.echo(f"gates changed from the defaults ({gates_text(GateConfig())}) to "
                   f"{gates_text(cfg.gates)}: a configuration choice, recorded with the model")
    settings = _settings()
    run_one_line(_train(cfg, settings, update=update, promote=not no_promote,
                        regime=regime and not update, publish=publish, report_json=report_json,
                        show_progress=progress, source=source,
                        cut_off_given=train_end is not None, family=family))


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


async def _train(cfg: TrainConfig, settings, *, update: bool, promote: bool, regime: bool,
                 publish: bool, report_json: Path | None, show_progress: bool,
                 source: str = "files", cut_off_given: bool = True,
                 family: str = "xgboost") -> None:
    from tm_trainer.pipeline import train as run_train
    from tm_trainer.registry_ops import record
    from tm_trainer.report import honest_lines, markdown, progress_bars, rich_table
    from tm_trainer.sources import rows_line

    registry, engine = await _registry(settings)
    try:
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
        out = await record(registry, result, promote=promote, publish=_publisher(settings, publish))
        for v in out.registered:
            typer.echo(f"registered {v}")
        for ev in out.promoted:
            typer.echo(f"promoted {ev.kind} {ev.version} (previous {ev.previous_version})")
        for line in out.kept + out.publish_errors:
            typer.echo(line)
    finally:
        await engine.dispose()


@models_app.command("list")
def list_models(kind: Annotated[str | None, typer.Option(help="signal | regime | rl")] = None,
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every registered version, newest first, with stage and gate numbers."""
    settings = _settings()

    async def go():
        registry, engine = await _registry(settings)
        try:
            return await registry.list(kind)
        finally:
            await engine.dispose()

    recs = run_one_line(go())
    if as_json:
        typer.echo(json.dumps([{"version": r.version, "kind": r.kind, "stage": r.stage,
                                "family": r.params.get("family", "xgboost")
                                if r.kind == "signal" else None,
                                "created_at_ms": r.created_at_ms, "parent": r.parent_version,
                                "metrics": r.public_metrics(), "why": r.metrics.get("why")}
                               for r in recs], indent=1))
        return
    t = Table(title="model registry")
    t.add_column("version", no_wrap=True)
    for c in ("kind", "stage", "created (UTC)", "IC", "Sharpe", "DSR (trials)", "timing t",
              "positive share", "Boruta", "why"):
        t.add_column(c)
    for r in recs:
        m = r.metrics
        dsr = f"{_num(m.get('dsr'))} ({m['n_trials']})" if "n_trials" in m else "-"
        t.add_row(r.version, r.kind, r.stage,
                  dt.datetime.fromtimestamp(r.created_at_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M"),
                  _num(m.get("mean_ic")), _num(m.get("sharpe")), dsr, _num(m.get("timing_t")),
                  _num(m.get("positive_share")), boruta_cell(m.get("boruta")),
                  str(m.get("why", "")))
    console.print(t)


def boruta_cell(b: Any) -> str:
    """``tm models``' Boruta column: confirmed / selected per instrument; "none confirmed"
    where Boruta confirmed nothing and ranking filled the whole list."""
    if not isinstance(b, dict) or not b:
        return "-"
    out = []
    for sym, v in sorted(b.items()):
        n_c, n_f = len(v.get("confirmed", [])), len(v.get("filled_by_ranking", []))
        out.append(f"{sym} none confirmed ({n_f} by ranking)" if n_c == 0 else
                   f"{sym} {n_c}/{n_c + n_f} confirmed")
    return "; ".join(out)


def _num(x) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


@models_app.command("promote")
def promote(version: str,
            reason: Annotated[str | None, typer.Option(
                help="Why (stored and published); required with --force.")] = None,
            publish: Annotated[bool, typer.Option("--publish/--no-publish")] = True,
            force: Annotated[bool, typer.Option(
                "--force", help="Promote a signal model below the minimum of forward shadow "
                "evidence (needs --reason; recorded in the registry).")] = False,
            min_shadow_days: Annotated[float | None, typer.Option(
                help="Forward (paper/live) shadow days a signal model needs "
                "[env TM_PROMOTE_MIN_SHADOW_DAYS; default 28].")] = None) -> None:
    """Show VERSION's walk-forward and shadow records, then make it production (the previous one
    is archived) and publish model.promoted. A signal model needs a minimum of forward shadow
    evidence, or --force with a --reason."""
    from tm_common.models.evidence import evidence_of

    from tm_trainer.promotion import PromotionRefused, decide, evidence_tables, min_forward_days

    try:
        min_days = min_forward_days(min_shadow_days)
    except PromotionRefused as e:
        fail(str(e), 2)

    async def act(reg: ModelRegistry):
        rec = await reg.get(version)
        if rec is None:
            raise RegistryError(f"unknown model version {version!r}")
        ev = evidence_of(rec.version, rec.kind, rec.metrics)
        for t in evidence_tables(ev, min_days):
            console.print(t)
        d = decide(ev, reason=reason, force=force, min_days=min_days)   # PromotionRefused
        return await reg.promote(version, d.reason, evidence=d.evidence)
    _switch(act, publish)


@models_app.command("rollback")
def rollback(kind: str,
             reason: Annotated[str, typer.Option(help="Why (stored and published).")] = "manual rollback",
             publish: Annotated[bool, typer.Option("--publish/--no-publish")] = True) -> None:
    """Re-promote the version of KIND that was production before the current one."""
    if kind not in ("signal", "regime", "rl"):
        fail(f"unknown kind {kind!r}: signal, regime or rl", 2)
    _switch(lambda reg: reg.rollback(kind, reason), publish)


def _switch(action, publish: bool) -> None:
    settings = _settings()

    async def go():
        registry, engine = await _registry(settings)
        try:
            event = await action(registry)
        finally:
            await engine.dispose()
        pub = _publisher(settings, publish)
        if pub is not None:
            try:
                await pub(event)
            except Exception as e:  # noqa: BLE001 - the registry changed; say publishing failed
                typer.echo(f"warning: model.promoted not published: {e}", err=True)
        return event

    ev = run_one_line(go())
    typer.echo(f"production {ev.kind}: {ev.version} (previous {ev.previous_version})")
