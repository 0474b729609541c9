"""What a run traded and why, in words, with the next steps: the banner at the end of ``tm demo``
and ``tm backtest`` and at the top of their report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelsInUse:
    """Production versions of the registry, and the newest signal candidate that is not
    production (with its gate numbers), at report time."""

    signal: str | None
    regime: str | None
    rl: str | None
    candidate: dict[str, Any] | None

    def as_meta(self) -> dict[str, Any]:
        return {"signal": self.signal, "regime": self.regime, "rl": self.rl,
                "signal_candidate": self.candidate}


async def _models(database_url: str) -> ModelsInUse:
    from tm_common.db import make_engine
    from tm_common.models.evidence import evidence_of
    from tm_common.models.registry import ModelRegistry

    engine = make_engine(database_url)
    try:
        reg = ModelRegistry(engine)
        prod = {k: await reg.production(k) for k in ("signal", "regime", "rl")}
        cand = next((r for r in await reg.list("signal") if r.stage != "production"), None)
    finally:
        await engine.dispose()
    c = None
    if cand is not None:
        ev = evidence_of(cand.version, cand.kind, cand.metrics)
        m = cand.metrics
        c = {"version": cand.version, "stage": cand.stage, "gate_passed": m.get("gate_passed"),
             "why": m.get("why"), "mean_ic": m.get("mean_ic"), "sharpe": m.get("sharpe"),
             "forward_days": round(ev.forward_days, 3),
             "forward_ic": ev.forward_ic if ev.forward_ic == ev.forward_ic else None}
    v = {k: None if r is None else r.version for k, r in prod.items()}
    return ModelsInUse(signal=v["signal"], regime=v["regime"], rl=v["rl"], candidate=c)


def models_in_use(database_url: str) -> ModelsInUse | None:
    """The registry's view, or None when it cannot be read (the banner says so)."""
    try:
        return asyncio.run(_models(database_url))
    except Exception:  # noqa: BLE001 - a report is still written without it
        return None


def _pct(x: Any) -> str:
    return "–" if not isinstance(x, (int, float)) or x != x else f"{x * 100:+.2f} %"


def _num(x: Any) -> str:
    return "–" if not isinstance(x, (int, float)) or x != x else f"{x:.3f}"


def banner(summary: dict, models: ModelsInUse | None, *, replay: bool = True,
           min_shadow_days: float = 28) -> list[str]:
    """Lines: what production traded and why, what the challenger did, then next steps."""
    tot = summary["stats"]["total"]
    orders = summary["counts"]["orders"]
    lines = []
    cand = models.candidate if models else None
    if models is None:
        lines.append(f"production: {orders} orders, return {_pct(tot.get('total_return'))} "
                     "(the model registry could not be read to say which models ran)")
    elif orders == 0 and models.signal is None:
        why = (f": {cand['version']} was refused by its walk-forward gates ({cand['why']})"
               if cand and cand.get("gate_passed") is False else "")
        lines.append(f"production traded flat: no production signal model{why}")
    elif orders == 0:
        lines.append(f"production traded flat: signal model {models.signal} gave no signal "
                     f"confident enough to size (tiers {summary.get('tiers')})")
    else:
        lines.append(f"production traded with signal model {models.signal or 'none'}: {orders} "
                     f"orders, return {_pct(tot.get('total_return'))}, Sharpe "
                     f"{_num(tot.get('sharpe'))}")
    ch = summary.get("challenger")
    if ch:
        ct = ch["stats"]["total"]
        ic = ch["stats"]["signal_ic"].get("all")
        if ch["counts"]["orders"]:
            lines.append(f"shadow challenger {ch['candidate']}: {ch['counts']['orders']} orders, "
                         f"return {_pct(ct.get('total_return'))}, Sharpe "
                         f"{_num(ct.get('sharpe'))}, realised IC {_num(ic)}")
        else:
            why = next(iter(ch.get("sizing_reasons") or {}), "")
            lines.append(f"shadow challenger {ch['candidate']} traded flat (realised IC "
                         f"{_num(ic)}){': ' + why if why else ''}")
        if replay:
            lines.append("  a replay is out-of-sample evidence, but not forward evidence: it does "
                         "not count toward promotion")
        elif cand and cand.get("version") == ch["candidate"] and "forward_days" in cand:
            ic = cand.get("forward_ic")
            lines.append(f"  forward evidence so far: {cand['forward_days']:.1f} of "
                         f"{min_shadow_days:g} days" + ("" if ic is None else
                                                        f", realised IC {_num(ic)}"))
    lines.append("next steps:")
    v = (ch or {}).get("candidate") or (cand or {}).get("version") or "<candidate>"
    passed = bool(cand and cand.get("version") == v and cand.get("gate_passed") is True)
    if passed:
        lines.append(f"  - paper-trade {v} on live prices beside production: `tm paper` (its "
                     f"gates passed; its paper days are the forward evidence it waits for); "
                     f"after {min_shadow_days:g} days with a positive IC the weekly `tm train` "
                     f"(or `tm models promote-ready`) promotes it")
    else:
        lines.append(f"  - paper-trade {v} on live prices beside production: `tm paper` (its "
                     f"paper days are forward evidence); after {min_shadow_days:g} days: "
                     f"`tm models promote {v}`")
    lines.append(f"  - or promote it now: `tm models promote {v} --force --reason \"…\"` (the "
                 "reason is recorded in the registry; " + (
                     "it has no forward evidence yet" if passed else "the gates said no") +
                 ", so you own it)")
    lines.append("  - or retrain with other gates: `tm train --gate-min-ic 0.02` (a "
                 "configuration choice, recorded with the model)")
    if orders == 0 and not (ch or {}).get("counts", {}).get("orders"):
        # promoted as it is, a model whose calibrated confidence never reaches a sizing tier
        # trades flat too: say how to watch the mechanics, and that it proves nothing
        lines.append("  - to watch the mechanics trade anyway (a demonstration, not evidence): "
                     "promote it as above, then lower the sizing tiers for one in-process run: "
                     "`TM_SIZER_KELLY_CONFIDENCE=0.02 TM_SIZER_BLENDED_CONFIDENCE=0.08 "
                     "tm backtest --start 2025-01-01 --end 2025-03-01`")
    return lines
