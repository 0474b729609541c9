"""After a VaR scale k < 1 (``var_limit``), every other open position → reduce-only orders to
round(k × position), unless that move is tiny (``min_delta``'s test).
"""

from __future__ import annotations

from dataclasses import replace

from tm_risk.domain.rules.base import Context, Rejection, Target, orders_for, rule
from tm_risk.domain.sizing import plan_orders, round_qty, tiny_delta_reason, to_decimal


def apply(target: Target, ctx: Context) -> Target | Rejection:
    if target.scale >= 1.0:
        return target
    p, state = ctx.params, ctx.state
    k = to_decimal(target.scale)
    orders, intended = list(target.orders), list(target.intended)
    for s in p.symbols:
        cur = state.position(s)
        if s == ctx.instrument or cur == 0:
            continue
        lot = p.instruments[s]
        new = round_qty(cur * k, lot)
        price = state.price(s)
        if new == cur or not price or tiny_delta_reason(
                cur, new, price, ctx.equity, lot, min_notional_usdt=p.min_notional_usdt,
                min_delta_fraction=p.min_delta_fraction):
            continue
        why = f"VaR rescale x{target.scale:.4f} after {ctx.instrument} target"
        orders += orders_for(s, ctx.bar_time_ms, plan_orders(cur, new, lot), why)
        intended.append((s, new))
    return replace(target, orders=tuple(orders), intended=tuple(intended))


RULE = rule("var_rescale", apply, __doc__)
