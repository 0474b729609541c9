"""Σ|t| ≤ ``gross_cap`` (2.0): |t| ≤ max(0, gross_cap − Σ_{j≠i} |t_j|), the other instruments
counted at their expected position × last close / equity.
"""

from __future__ import annotations

from tm_risk.domain.rules.base import Context, Rejection, Target, cap, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    gross = ctx.params.gross_cap
    rest = [v for k, v in ctx.exposures.items() if k != ctx.instrument]
    return cap(target, gross - sum(abs(v) for v in rest), f"gross leverage cap {gross:g}")


RULE = rule("gross_cap", apply, __doc__)
