"""What ``tm models promote`` shows and requires: the candidate's walk-forward record and its
shadow record, and a minimum of forward evidence for a signal model.

Forward evidence is days of paper or live trading in a shadow book
(:mod:`tm_common.models.evidence`). Below ``min_forward_days`` a promotion is refused unless it is
forced with a reason of the operator's own; the registry's stage history then records the reason,
``forced: true`` and the evidence it was forced over. Regime and RL models are not shadowed (a
shadow book runs signal candidates), so for them the record is shown and nothing is required.

The trainer promotes on its own only what a person would (:func:`auto_refusal`): a signal
candidate whose walk-forward gates passed **and** whose forward shadow record reached the minimum
with a positive realised IC. A candidate fresh from training has no forward record, so it waits
as a candidate; the weekly ``tm train`` (and ``tm models promote-ready``) promotes it once a
shadow book has paper-traded it long enough (:func:`tm_trainer.registry_ops.promote_ready`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from tm_common.errors import TradeMatrixError
from tm_common.models.evidence import Evidence

MIN_FORWARD_DAYS_ENV = "TM_PROMOTE_MIN_SHADOW_DAYS"
DEFAULT_MIN_FORWARD_DAYS = 28.0
#: Kinds whose promotion needs forward evidence (the kinds a shadow book can run).
SHADOWED_KINDS = ("signal",)


class PromotionRefused(TradeMatrixError):
    """Not enough forward evidence, or a force without a reason."""


def min_forward_days(given: float | None) -> float:
    """``--min-shadow-days``, else ``TM_PROMOTE_MIN_SHADOW_DAYS``, else the default."""
    if given is not None:
        value = given
    else:
        raw = os.environ.get(MIN_FORWARD_DAYS_ENV)
        try:
            value = DEFAULT_MIN_FORWARD_DAYS if raw is None else float(raw)
        except ValueError:
            raise PromotionRefused(f"{MIN_FORWARD_DAYS_ENV} must be a number of days, "
                                   f"got {raw!r}") from None
    if not value >= 0:
        raise PromotionRefused(f"the minimum of forward shadow days must be >= 0, got {value}")
    return value


@dataclass(frozen=True)
class Decision:
    reason: str
    evidence: dict[str, Any]


def decide(ev: Evidence, *, reason: str | None, force: bool, min_days: float) -> Decision:
    """The reason and evidence to record, or :class:`PromotionRefused` saying why not."""
    summary = {"forward_days": round(ev.forward_days, 3), "min_forward_days": min_days,
               "shadow_runs": len(ev.shadow)}
    short = ev.shortfall(min_days) if ev.kind in SHADOWED_KINDS else None
    if short is None:
        return Decision(reason or "manual promote", summary)
    if not force:
        refused = ev.walk_forward.get("gate_passed") is False
        gates = f" (its walk-forward gates refused it: {ev.walk_forward.get('why')})" \
            if refused else ""
        raise PromotionRefused(f"{short}{gates}; run it in a shadow book in paper or live mode "
                               f"(tm shadow --candidate {ev.version}), or promote with --force "
                               "and a --reason")
    if not reason or not reason.strip():
        raise PromotionRefused("--force needs a --reason: it is recorded in the registry")
    return Decision(reason.strip(), {**summary, "forced": True, "shortfall": short})


def auto_refusal(ev: Evidence, min_days: float) -> str | None:
    """Why the trainer must not promote ``ev``'s model on its own (None: it may).

    Its walk-forward gates must have passed. A signal model also needs ``min_days`` of forward
    shadow evidence and, when any is required, a positive realised IC over it: a candidate the
    market contradicted forward waits for a person (``tm models promote --force``)."""
    if ev.walk_forward.get("gate_passed") is not True:
        return f"{ev.version}'s walk-forward gates did not pass"
    if ev.kind not in SHADOWED_KINDS or min_days <= 0:
        return None
    short = ev.shortfall(min_days)
    if short is not None:
        return short
    ic = ev.forward_ic
    if not ic > 0:
        return (f"{ev.version}'s realised IC over {ev.forward_days:.1f} forward shadow days is "
                f"{_num(ic)}, not positive")
    return None


def auto_evidence(ev: Evidence, min_days: float) -> dict[str, Any]:
    """What an automatic promotion records with the stage change."""
    ic = ev.forward_ic
    return {"forward_days": round(ev.forward_days, 3), "min_forward_days": min_days,
            "shadow_runs": len(ev.shadow), "forward_ic": round(ic, 6) if ic == ic else None,
            "automatic": True}


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def _num(x: Any, pct: bool = False) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool) or x != x:
        return "-"
    return f"{x * 100:.2f}%" if pct else f"{x:.4f}"


def evidence_tables(ev: Evidence, min_days: float) -> list[Table]:
    """The walk-forward record and the shadow record, as the console shows them."""
    wf = Table(title=f"{ev.version} ({ev.kind}): walk-forward record (out of sample)")
    for c in ("mean IC", "Sharpe", "hit rate", "baseline IC", "baseline Sharpe", "gates"):
        wf.add_column(c)
    w = ev.walk_forward
    wf.add_row(_num(w.get("mean_ic")), _num(w.get("sharpe")), _num(w.get("hit_rate")),
               _num(w.get("baseline_mean_ic")), _num(w.get("baseline_sharpe")),
               str(w.get("why", "-")))
    sh = Table(title=f"shadow record: {ev.forward_days:.1f} forward days "
                     f"(minimum {min_days:g}; replays shown, not counted)")
    for c in ("run", "mode", "window (UTC)", "days", "bars", "return", "Sharpe", "max DD", "IC",
              "orders"):
        sh.add_column(c)
    for r in ev.shadow:
        sh.add_row(r.run_id, r.mode + ("" if r.forward else " (not counted)"),
                   f"{_day(r.first_bar_ms)} → {_day(r.last_bar_ms)}", f"{r.days:.1f}",
                   str(r.bars), _num(r.total_return, True), _num(r.sharpe),
                   _num(r.max_drawdown, True), _num(r.ic), str(r.orders))
    return [wf, sh]
