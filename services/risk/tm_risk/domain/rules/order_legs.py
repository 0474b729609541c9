"""Orders from the expected position to the target quantity, each leg ≤ ``maxMktOrderQty``:
reducing |position| without crossing 0 is reduce-only; a flip is a reduce-only close of the whole
position plus an opening order (:func:`tm_risk.domain.sizing.plan_orders`). No change → no order.
"""

from __future__ import annotations

from dataclasses import replace

from tm_risk.domain.rules.base import Context, Rejection, Target, orders_for, rule
from tm_risk.domain.sizing import plan_orders


def apply(target: Target, ctx: Context) -> Target | Rejection:
    qty, current = target.qty, ctx.current
    if qty is None or qty == current or target.skipped is not None:
        return target
    legs = plan_orders(current, qty, ctx.lot)
    orders = orders_for(ctx.instrument, ctx.bar_time_ms, legs, "; ".join(target.notes))
    return replace(target, orders=(*target.orders, *orders),
                   intended=(*target.intended, (ctx.instrument, qty)))


RULE = rule("order_legs", apply, __doc__)
