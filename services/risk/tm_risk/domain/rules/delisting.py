"""A delisting the venue has scheduled (instruments-info ``deliveryTime``) → no new or larger
exposure from the first bar it is known; a zero target from ``delisting_lead_ms`` (86,400,000
ms: 1 day) before it, so that the mesh closes the position with its own orders, not the venue at
its delivery price.

Until then the target is held between zero and the current exposure (same side, never larger).
"""

from __future__ import annotations

from dataclasses import replace

from tm_common.timefmt import utc_minute

from tm_risk.domain.rules.base import Context, Rejection, Target, cap, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    at_ms = ctx.lot.delivery_time_ms
    if not at_ms:
        return target
    when = f"{utc_minute(at_ms)} UTC"
    if ctx.bar_time_ms + ctx.params.interval_ms >= at_ms - ctx.params.delisting_lead_ms:
        flat = replace(target, fraction=0.0)
        return flat.note(f"delisting {when}: flat") if target.fraction else flat
    held = ctx.exposures[ctx.instrument]
    limit = abs(held) if target.fraction * held > 0 else 0.0
    return cap(target, limit, f"delisting {when}: no new exposure")


RULE = rule("delisting", apply, __doc__)
