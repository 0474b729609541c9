"""``tm models list|promote|rollback`` (``models_app``): the model registry's versions as a
table or JSON, promotion by hand (with the forward shadow evidence a signal model needs) and
roll-back, each switch published as ``model.promoted``. Expected failures are one ``error:`` line
(:func:`tm_trainer.cli.fail`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.table import Table
from tm_common.models.registry import ModelRegistry, RegistryError

from tm_trainer.cli import _publisher, _registry, _settings, console, fail, run_one_line

models_app = typer.Typer(name="models", help="Model registry: list, promote, roll back.",
                         no_args_is_help=True, add_completion=False,
                         pretty_exceptions_show_locals=False, rich_markup_mode=None)


@models_app.command("list")
def list_models(kind: Annotated[str | None, typer.Option(help="signal | regime | rl")] = None,
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every registered version, newest first, with stage, gate numbers and forward shadow
    evidence (days, realised IC: what `tm train` promotes a waiting signal candidate on)."""
    from tm_common.models.evidence import evidence_of

    settings = _settings()

    async def go():
        registry, engine = await _registry(settings)
        try:
            return await registry.list(kind)
        finally:
            await engine.dispose()

    recs = run_one_line(go())
    forward = {r.version: evidence_of(r.version, r.kind, r.metrics) for r in recs}
    if as_json:
        typer.echo(json.dumps([{"version": r.version, "kind": r.kind, "stage": r.stage,
                                "family": r.params.get("family", "xgboost")
                                if r.kind == "signal" else None,
                                "created_at_ms": r.created_at_ms, "parent": r.parent_version,
                                "metrics": r.public_metrics(), "why": r.metrics.get("why"),
                                "forward_days": round(forward[r.version].forward_days, 3),
                                "forward_ic": _finite(forward[r.version].forward_ic)}
                               for r in recs], indent=1))
        return
    t = Table(title="model registry")
    t.add_column("version", no_wrap=True)
    for c in ("kind", "stage", "created (UTC)", "IC", "Sharpe", "DSR (trials)", "timing t",
              "positive share", "Boruta", "forward days (IC)", "why"):
        t.add_column(c)
    for r in recs:
        m = r.metrics
        dsr = f"{_num(m.get('dsr'))} ({m['n_trials']})" if "n_trials" in m else "-"
        t.add_row(r.version, r.kind, r.stage,
                  dt.datetime.fromtimestamp(r.created_at_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M"),
                  _num(m.get("mean_ic")), _num(m.get("sharpe")), dsr, _num(m.get("timing_t")),
                  _num(m.get("positive_share")), boruta_cell(m.get("boruta")),
                  _forward_cell(forward[r.version]), str(m.get("why", "")))
    console.print(t)


def _finite(x: float) -> float | None:
    return round(x, 6) if x == x else None


def _forward_cell(ev: Any) -> str:
    if not ev.shadow:
        return "-"
    ic = ev.forward_ic
    return f"{ev.forward_days:.1f}" + (f" ({ic:.4f})" if ic == ic else "")


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


@models_app.command("promote-ready")
def promote_ready_cmd(
        publish: Annotated[bool, typer.Option("--publish/--no-publish")] = True,
        min_shadow_days: Annotated[float | None, typer.Option(
            help="Forward (paper/live) shadow days a signal model needs "
            "[env TM_PROMOTE_MIN_SHADOW_DAYS; default 28].")] = None) -> None:
    """Promote the newest signal candidate newer than production whose walk-forward gates
    passed and whose forward shadow evidence now suffices (with a positive realised IC), as the
    weekly `tm train` does first; list the others waiting and what for."""
    from tm_trainer.promotion import PromotionRefused, min_forward_days
    from tm_trainer.registry_ops import promote_ready
    from tm_trainer.train_cli import say_outcome

    try:
        min_days = min_forward_days(min_shadow_days)
    except PromotionRefused as e:
        fail(str(e), 2)
    settings = _settings()

    async def go():
        registry, engine = await _registry(settings)
        try:
            return await promote_ready(registry, publish=_publisher(settings, publish),
                                       min_days=min_days)
        finally:
            await engine.dispose()

    out = run_one_line(go())
    say_outcome(out)
    if not out.promoted:
        typer.echo("nothing promoted: no candidate newer than production has passed its gates "
                   "and its forward evidence" if not out.awaiting else "nothing promoted yet")


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
