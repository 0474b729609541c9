"""Breaker HALF_OPEN → target × ``half_open_factor`` (0.5)."""

from __future__ import annotations

from dataclasses import replace

from tm_risk.domain.breaker import State
from tm_risk.domain.rules.base import Context, Rejection, Target, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    if ctx.state.breaker.state != State.HALF_OPEN:
        return target
    factor = ctx.params.breaker.half_open_factor
    return replace(target, fraction=target.fraction * factor).note(f"HALF_OPEN x{factor:g}")


RULE = rule("half_open", apply, __doc__)
