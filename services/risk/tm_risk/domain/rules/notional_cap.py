"""|t| × equity ≤ ``max_notional_usdt`` (1,000,000 USDT per instrument)."""

from __future__ import annotations

from tm_risk.domain.rules.base import Context, Rejection, Target, cap, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    equity, limit = ctx.equity_usdt, ctx.params.max_notional_usdt
    if equity <= 0:
        return target
    return cap(target, float(limit) / equity, f"notional cap {limit} USDT")


RULE = rule("notional_cap", apply, __doc__)
