"""|t| ≤ HRP budget × ``gross_cap``: the instrument's hierarchical-risk-parity budget
(:mod:`tm_risk.domain.hrp`; budgets sum to 1, so these caps sum to the gross cap).
"""

from __future__ import annotations

from tm_risk.domain.rules.base import Context, Rejection, Target, cap, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    budget, gross = ctx.budget, ctx.params.gross_cap
    if budget is None:
        return target
    return cap(target, budget * gross, f"risk budget {budget:.4f} x gross {gross:g}")


RULE = rule("risk_budget", apply, __doc__)
