"""Unknown instrument, non-finite target, no snapshot, equity ≤ 0 or no price → rejected
(``unknown_instrument``, ``invalid_target``, ``no_equity``, ``no_price``).

Every later rule may rely on a configured instrument, a finite target, equity > 0 and a price.
"""

from __future__ import annotations

import math

from tm_risk.domain.rules.base import Context, Rejection, Target, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    instrument, fraction = ctx.instrument, target.fraction
    if instrument not in ctx.params.symbols:
        return ctx.reject("unknown_instrument", f"instrument {instrument} is not configured")
    if not math.isfinite(fraction):
        return ctx.reject("invalid_target", f"target fraction {fraction!r} is not finite")
    equity = ctx.state.equity
    if equity is None:
        return ctx.reject("no_equity", "no portfolio snapshot yet")
    if equity <= 0:
        return ctx.reject("no_equity", f"equity {equity} USDT <= 0")
    price = ctx.state.price(instrument)
    if not price or price <= 0:
        return ctx.reject("no_price", f"no price for {instrument}")
    return target


RULE = rule("inputs", apply, __doc__)
