"""A tiny move is skipped (``tiny_delta``, "skipped: …"): |Δ| < ``minOrderQty``, the part that
opens or increases a position worth less than the venue's ``minNotionalValue``, |Δ| × price <
``min_notional_usdt`` (10 USDT) or < ``min_delta_fraction`` (0.2 %) of equity; a full close is only
subject to ``minOrderQty`` (:func:`tm_risk.domain.sizing.tiny_delta_reason`).

The skip is not final: a VaR rescale of the other positions still goes out.
"""

from __future__ import annotations

from dataclasses import replace

from tm_risk.domain.rules.base import Context, Rejection, Target, rule
from tm_risk.domain.sizing import tiny_delta_reason


def apply(target: Target, ctx: Context) -> Target | Rejection:
    current, qty, p = ctx.current, target.qty, ctx.params
    if qty is None or qty == current or target.skipped is not None:
        return target
    tiny = tiny_delta_reason(current, qty, ctx.price, ctx.equity, ctx.lot,
                             min_notional_usdt=p.min_notional_usdt,
                             min_delta_fraction=p.min_delta_fraction)
    if not tiny:
        return target
    return replace(target, skipped=ctx.reject("tiny_delta", f"skipped: {tiny}"))


RULE = rule("min_delta", apply, __doc__)
