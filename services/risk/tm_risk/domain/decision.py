"""One sized target through every rule → orders and/or a rejection, and the breaker's flatten.

:func:`decide_target` applies :data:`tm_risk.domain.rules.RULES` in the tuple's order (that tuple
is the documented order; each rule is a module of :mod:`tm_risk.domain.rules`). The first rule
that rejects ends the decision; otherwise the target's orders go out, with a ``"skipped: …"``
rejection when the move was too small, or nothing (``hold``) when there is no change.

The functions read the state and never change it; the handler applies ``Decision.intended``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from tm_risk.domain.params import RiskParams
from tm_risk.domain.rules import RULES, Context, Rule, Target
from tm_risk.domain.rules.base import ApprovedOrder, Rejection, exposures
from tm_risk.domain.sizing import flatten_intent_id, plan_orders
from tm_risk.domain.state import RiskState
from tm_risk.domain.var import VarResult

__all__ = ["ApprovedOrder", "Decision", "Rejection", "decide_target", "exposures",
           "flatten_orders"]


@dataclass(frozen=True, slots=True)
class Decision:
    """``code``: ``approved``, ``hold``, or the rejection code. ``intended``: new expected
    positions (base coin) once ``orders`` fill. ``var``: VaR of the final portfolio (if known)."""

    code: str
    orders: tuple[ApprovedOrder, ...] = ()
    rejection: Rejection | None = None
    intended: Mapping[str, Decimal] = field(default_factory=dict)
    var: VarResult | None = None
    fraction: float | None = None
    notes: tuple[str, ...] = ()


def decide_target(state: RiskState, params: RiskParams, instrument: str, bar_time_ms: int,
                  fraction: float, tier: str = "", rules: tuple[Rule, ...] = RULES) -> Decision:
    """The decision for one ``PositionSized``: ``fraction`` (signed fraction of equity) of
    ``instrument`` for the bar opening at ``bar_time_ms``, through ``rules`` in order."""
    ctx = Context(state, params, instrument, bar_time_ms)
    target = Target(fraction, (f"tier {tier}",) if tier else ())
    for r in rules:
        out = r.apply(target, ctx)
        if isinstance(out, Rejection):
            return Decision(out.code, rejection=out)
        target = out
    skipped = target.skipped
    code = "approved" if target.orders else (skipped.code if skipped else "hold")
    return Decision(code, target.orders, skipped, dict(target.intended), target.var,
                    target.fraction, target.notes)


def flatten_orders(state: RiskState, params: RiskParams, cause_id: str,
                   reason: str) -> tuple[list[ApprovedOrder], dict[str, Decimal]]:
    """Reduce-only orders that close every expected non-zero position (breaker OPEN), with ids
    derived from ``cause_id`` (the breaker transition's event id, or the snapshot's), and the new
    expected positions (0). Positions below ``min_order_qty`` cannot be ordered and are left."""
    orders: list[ApprovedOrder] = []
    intended: dict[str, Decimal] = {}
    names = sorted(set(params.symbols) | set(state.positions) | set(state.intended))
    for s in names:
        lot = params.instruments.get(s)
        cur = state.position(s)
        if lot is None or cur == 0 or abs(cur) < lot.min_order_qty:
            continue
        bar = state.last_bar_open_ms.get(s, state.clock_ms // params.interval_ms * params.interval_ms)
        for i, leg in enumerate(plan_orders(cur, Decimal(0), lot, kind="flatten")):
            orders.append(ApprovedOrder(s, bar, flatten_intent_id(cause_id, s, i), leg, reason))
        intended[s] = Decimal(0)
    return orders, intended
