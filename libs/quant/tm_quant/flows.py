"""External cash flows (deposits, withdrawals, an opening balance adopted from the venue) in an
equity curve, time-weighted: a flow is not a return.

A flow of ``amount`` (USDT, > 0 in) booked when the curve stood at ``before`` (the newest
snapshot equity, or the initial equity before the first) buys or sells units of the curve at
that equity. Every figure the curve is measured against per unit is multiplied by
``(before + amount) / before``: the equity the next return starts from, the peak a drawdown is
measured from, the initial equity a growth rate starts from. So a withdrawal is not a loss, a
deposit is not a gain, and the drawdown ratio is what it was before the flow. The portfolio's
performance tracker and risk's breaker and loss limits use the same rule on the same numbers
(the newest snapshot equity), so they agree.

A curve at or below zero, or a withdrawal of all of it, has no unit value: the figures then
move by ``amount`` itself.
"""

from __future__ import annotations

from decimal import Decimal


def flow_factor(before: Decimal, amount: Decimal) -> Decimal | None:
    """``(before + amount) / before``, or None when the curve has no unit value."""
    if before <= 0 or before + amount <= 0:
        return None
    return (before + amount) / before


def rebase(value: Decimal, before: Decimal, amount: Decimal) -> Decimal:
    """``value`` (a per-unit reference of the curve) after a flow of ``amount`` at ``before``."""
    k = flow_factor(before, amount)
    return value + amount if k is None else value * k


def unit_curve(initial: float, points: list[tuple[float, float]]) -> list[float]:
    """An equity curve without its flows, for statistics: ``initial`` then one value per
    ``(equity, cumulative transfers)`` point, each the previous value times the point's
    return net of the flow since the previous point (made at the previous point's equity, as
    :func:`rebase` has it). With no flow at all it is the equity itself, exactly."""
    if not any(t for _, t in points):
        return [initial, *(e for e, _ in points)]
    out, prev_e, prev_t = [initial], initial, 0.0
    for e, t in points:
        base = prev_e + (t - prev_t)
        out.append(out[-1] * e / base if prev_e > 0 and base > 0 else out[-1] + e - base)
        prev_e, prev_t = e, t
    return out
