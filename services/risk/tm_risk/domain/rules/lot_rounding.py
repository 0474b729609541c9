"""Target quantity = t × equity / price, rounded toward zero to ``qtyStep``, capped at
``maxOrderQty``, and 0 below ``minOrderQty`` or below the venue's ``minNotionalValue``
(:func:`tm_risk.domain.sizing.target_qty`). A non-zero target that rounds to the current position
this way is skipped (``tiny_delta``, "skipped: target … below …"), never sent to be refused.
"""

from __future__ import annotations

from dataclasses import replace

from tm_risk.domain.rules.base import Context, Rejection, Target, rule
from tm_risk.domain.sizing import rounding_reason, target_qty


def apply(target: Target, ctx: Context) -> Target | Rejection:
    qty = target_qty(target.fraction, ctx.equity, ctx.price, ctx.lot)
    out = replace(target, qty=qty)
    why = rounding_reason(target.fraction, ctx.equity, ctx.price, ctx.lot) if qty == 0 else None
    if why is None:
        return out
    if qty == ctx.current:
        return replace(out, skipped=ctx.reject("tiny_delta", f"skipped: {why}"))
    return out.note(f"target rounded to 0: {why}")


RULE = rule("lot_rounding", apply, __doc__)
