"""Target quantity = t × equity / price, rounded toward zero to ``qtyStep``, 0 below
``minOrderQty``, capped at ``maxOrderQty`` (:func:`tm_risk.domain.sizing.target_qty`).
"""

from __future__ import annotations

from dataclasses import replace

from tm_risk.domain.rules.base import Context, Rejection, Target, rule
from tm_risk.domain.sizing import target_qty


def apply(target: Target, ctx: Context) -> Target | Rejection:
    return replace(target, qty=target_qty(target.fraction, ctx.equity, ctx.price, ctx.lot))


RULE = rule("lot_rounding", apply, __doc__)
