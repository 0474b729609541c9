"""A delisting the venue has scheduled (instruments-info ``deliveryTime``) → no new or larger
exposure from the first bar it is known, and a zero target from ``delisting_lead_ms`` (86,400,000
ms: 1 day) before it, so that the mesh closes the position with its own orders, not the venue at
its delivery price; a delisting under way or done (``status`` ``Delivering`` or ``Closed``) → a
zero target; any other status than ``Trading`` (``PreLaunch``, or one this code does
not know) → no new or larger exposure.

Until flat, the target is held between zero and the current exposure (same side, never larger).
"""

from __future__ import annotations

from dataclasses import replace

from tm_common.instruments import DELISTED_STATUSES, TRADING
from tm_common.timefmt import utc_minute

from tm_risk.domain.rules.base import Context, Rejection, Target, cap, rule


def apply(target: Target, ctx: Context) -> Target | Rejection:
    at_ms, status = ctx.lot.delivery_time_ms, ctx.lot.status
    when = f"delisting {utc_minute(at_ms)} UTC" if at_ms else ""
    if status in DELISTED_STATUSES:
        return _flat(target, f"venue status {status}")
    if at_ms and ctx.bar_time_ms + ctx.params.interval_ms >= at_ms - ctx.params.delisting_lead_ms:
        return _flat(target, when)
    if status != TRADING:
        why = f"venue status {status}"
    elif at_ms:
        why = when
    else:
        return target
    held = ctx.exposures[ctx.instrument]
    limit = abs(held) if target.fraction * held > 0 else 0.0
    return cap(target, limit, f"{why}: no new exposure")


def _flat(target: Target, why: str) -> Target:
    flat = replace(target, fraction=0.0)
    return flat.note(f"{why}: flat") if target.fraction else flat


RULE = rule("delisting", apply, __doc__)
