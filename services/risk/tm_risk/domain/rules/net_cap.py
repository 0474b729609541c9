"""|Σt| ≤ ``net_cap`` (1.5): for t > 0, t ≤ max(0, net_cap − Σ_{j≠i} t_j); for t < 0,
|t| ≤ max(0, net_cap + Σ_{j≠i} t_j).

If the other instruments already satisfy the gross and net caps, the capped target keeps the
whole portfolio within both.
"""

from __future__ import annotations

from tm_risk.domain.rules.base import Context, Rejection, Target, cap, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    net = ctx.params.net_cap
    sign = 1.0 if target.fraction >= 0 else -1.0
    net_rest = sum([v for k, v in ctx.exposures.items() if k != ctx.instrument])
    return cap(target, net - sign * net_rest, f"net leverage cap {net:g}")


RULE = rule("net_cap", apply, __doc__)
