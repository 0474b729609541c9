"""|t| ≤ ``max_fraction`` (1.0; per-symbol overrides in ``instrument_max_fraction``).

Like every cap, it only moves the target toward zero and never flips its sign.
"""

from __future__ import annotations

from tm_risk.domain.rules.base import Context, Rejection, Target, cap, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    limit = ctx.params.fraction_cap(ctx.instrument)
    return cap(target, limit, f"instrument cap {limit:g}")


RULE = rule("instrument_cap", apply, __doc__)
