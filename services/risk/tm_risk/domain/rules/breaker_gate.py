"""Breaker OPEN → rejected ``breaker_open`` ("breaker OPEN"): no new exposure while open.

Stale data, drawdown, consecutive executor failures and a manual trip are breaker triggers
(:mod:`tm_risk.domain.breaker`), not rules of their own: they act on a target through this gate.
"""

from __future__ import annotations

from tm_risk.domain.breaker import State
from tm_risk.domain.rules.base import Context, Rejection, Target, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    if ctx.state.breaker.state == State.OPEN:
        return ctx.reject("breaker_open", "breaker OPEN")
    return target


RULE = rule("breaker_gate", apply, __doc__)
