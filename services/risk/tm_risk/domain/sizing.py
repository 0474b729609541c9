"""Order sizing: target fraction of equity → lot-rounded target quantity → order legs.

Units: fractions are signed fractions of equity (0.5 = long, notional half of equity), equity and
prices are USDT (``Decimal``), quantities are base coin (``Decimal``, signed for positions: > 0
long, < 0 short; order quantities are positive with a side).

Flip rule (long → short or short → long): **two legs**, a reduce-only close of the whole current
position and then a plain opening order for the new side. Bybit's reduce-only flag cannot be set on
an order that crosses zero, and splitting keeps the close unconditional (it is always allowed, even
when the opening leg would later be refused by the venue or by margin).

Every leg's quantity is at most ``max_mkt_order_qty`` (the venue's single market order limit); a
larger delta is split into as few legs as that allows, of equal size on the ``qty_step`` grid (so
no leg is a small remainder below the venue's minimums), each with its own deterministic intent
id.

The venue's filters are respected by rounding, never by sending an order the venue would refuse:
a target is rounded toward zero to ``qty_step``, capped at ``max_order_qty``, and is 0 when it is
below ``min_order_qty`` or its value below ``min_notional`` (a position the venue would not let us
open); an opening or increasing move below ``min_notional`` is skipped with the reason
(:func:`tiny_delta_reason`). Reduce-only orders are exempt from the minimum notional, as on Bybit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from tm_common.events.base import deterministic_id

from tm_risk.domain.params import LotFilter

Side = Literal["Buy", "Sell"]
LegKind = Literal["open", "increase", "reduce", "close", "flip_close", "flip_open", "flatten"]
INTENT_VERSION = "v1"
ZERO = Decimal(0)


def to_decimal(x: float) -> Decimal:
    """A float as the Decimal of its shortest repr (``0.1`` → ``Decimal('0.1')``): deterministic and
    free of binary noise. Raises ``ValueError`` for NaN or infinity."""
    d = Decimal(repr(float(x)))
    if not d.is_finite():
        raise ValueError(f"not a finite number: {x!r}")
    return d


def canon(q: Decimal) -> str:
    """A quantity as canonical text: ``Decimal('1.500')`` and ``Decimal('1.5')`` both → ``'1.5'``."""
    if q == 0:
        return "0"
    return format(q.normalize(), "f")


def round_qty(qty: Decimal, lot: LotFilter) -> Decimal:
    """``qty`` (base coin, signed) rounded toward zero to ``qty_step``; 0 when |result| is below
    ``min_order_qty``; |result| capped at ``max_order_qty``. The sign is kept; |result| ≤ |qty|."""
    step = lot.qty_step
    mag = (abs(qty) // step) * step
    if mag < lot.min_order_qty:
        return ZERO
    mag = min(mag, lot.max_order_qty)
    return mag if qty > 0 else -mag


def target_qty(fraction: float, equity: Decimal, price: Decimal, lot: LotFilter) -> Decimal:
    """Target position (base coin, signed) for ``fraction`` of ``equity`` (USDT) at ``price``
    (USDT per coin): ``fraction × equity / price`` rounded by :func:`round_qty`, and 0 when the
    rounded position is worth less than ``min_notional`` (it could not be opened)."""
    if price <= 0:
        raise ValueError(f"price must be > 0, got {price}")
    if equity <= 0:
        return ZERO
    qty = round_qty(to_decimal(fraction) * equity / price, lot)
    return ZERO if abs(qty) * price < lot.min_notional else qty


def rounding_reason(fraction: float, equity: Decimal, price: Decimal, lot: LotFilter) -> str | None:
    """Why a non-zero ``fraction`` gives a zero target (:func:`target_qty`), or None when it
    does not: the raw quantity is below ``min_order_qty``, or its value below ``min_notional``."""
    if fraction == 0 or equity <= 0 or price <= 0:
        return None
    raw = abs(to_decimal(fraction) * equity / price)
    rounded = abs(round_qty(raw, lot))
    if rounded == 0:
        return (f"target {canon(raw.quantize(Decimal('1e-12')))} below minOrderQty "
                f"{canon(lot.min_order_qty)} (qtyStep {canon(lot.qty_step)})")
    if rounded * price < lot.min_notional:
        return (f"target notional {rounded * price:.2f} USDT below the venue's minNotionalValue "
                f"{canon(lot.min_notional)} USDT")
    return None


@dataclass(frozen=True, slots=True)
class OrderLeg:
    """One order to send: ``qty`` > 0 on ``side``; ``position_after`` is the signed position once
    it fills (``target_qty`` of the event)."""

    side: Side
    qty: Decimal
    reduce_only: bool
    position_before: Decimal
    position_after: Decimal
    kind: LegKind


def leg_sizes(total: Decimal, max_qty: Decimal, step: Decimal) -> list[Decimal]:
    """``total`` (> 0, a multiple of ``step``) in the fewest legs of at most ``max_qty``, as
    equal as the ``step`` grid allows (the larger ones first); they add up to ``total`` (a total
    off the grid, e.g. a position opened under an older step, leaves its remainder in the last
    leg)."""
    if total <= 0:
        return []
    if total <= max_qty:
        return [total]
    n = int(total // max_qty) + (1 if total % max_qty else 0)    # ceil(total / max_qty)
    base = (total / n // step) * step
    extra = int((total - base * n) // step)            # whole steps left over, < n
    legs = [base + step if i < extra else base for i in range(n)]
    legs[-1] += total - sum(legs)
    return legs


def _chunks(before: Decimal, after: Decimal, side: Side, reduce_only: bool, kind: LegKind,
            lot: LotFilter) -> list[OrderLeg]:
    """Legs from ``before`` to ``after`` (same sign side of zero), each at most
    ``max_mkt_order_qty`` (:func:`leg_sizes`)."""
    legs: list[OrderLeg] = []
    sign = 1 if side == "Buy" else -1
    pos = before
    for q in leg_sizes(abs(after - before), lot.max_mkt_order_qty, lot.qty_step):
        nxt = pos + sign * q
        legs.append(OrderLeg(side, q, reduce_only, pos, nxt, kind))
        pos = nxt
    return legs


def plan_orders(current: Decimal, target: Decimal, lot: LotFilter,
                kind: LegKind | None = None) -> list[OrderLeg]:
    """The legs that take the position from ``current`` to ``target`` (both signed, base coin).

    Reducing |position| without crossing zero is reduce-only; a flip is a reduce-only close plus
    an opening leg (module docstring). ``kind`` overrides the leg kind (e.g. ``"flatten"``).
    Empty when ``current == target``."""
    if current == target:
        return []
    if current != 0 and target != 0 and (current > 0) != (target > 0):
        close_side: Side = "Sell" if current > 0 else "Buy"
        return (_chunks(current, ZERO, close_side, True, kind or "flip_close", lot)
                + _chunks(ZERO, target, "Buy" if target > 0 else "Sell", False, kind or "flip_open", lot))
    side: Side = "Buy" if target > current else "Sell"
    if abs(target) < abs(current):
        return _chunks(current, target, side, True, kind or ("close" if target == 0 else "reduce"), lot)
    return _chunks(current, target, side, False, kind or ("open" if current == 0 else "increase"), lot)


def tiny_delta_reason(current: Decimal, target: Decimal, price: Decimal, equity: Decimal,
                      lot: LotFilter, *, min_notional_usdt: Decimal,
                      min_delta_fraction: float) -> str | None:
    """Why the move ``current → target`` is too small to trade, or None when it should trade.

    Skipped when ``|target − current|`` is below ``min_order_qty``, or its notional
    (``|Δ| × price``, USDT) is below ``min_notional_usdt``, or that notional is below
    ``min_delta_fraction`` of equity. A full close (``target == 0``) is exempt from the notional
    and fraction rules so that a small residual position can always be closed."""
    delta = abs(target - current)
    if delta == 0:
        return None
    if delta < lot.min_order_qty:
        return f"delta {canon(delta)} below minOrderQty {canon(lot.min_order_qty)}"
    if target == 0:
        return None
    opening = opening_qty(current, target)
    if opening > 0 and opening * price < lot.min_notional:
        return (f"opening order notional {opening * price:.2f} USDT below the venue's "
                f"minNotionalValue {canon(lot.min_notional)} USDT")
    notional = delta * price
    if notional < min_notional_usdt:
        return f"delta notional {notional:.2f} USDT below {canon(min_notional_usdt)} USDT"
    if equity > 0 and float(notional / equity) < min_delta_fraction:
        return (f"delta notional {float(notional / equity):.4%} of equity below "
                f"{min_delta_fraction:.4%}")
    return None


def opening_qty(current: Decimal, target: Decimal) -> Decimal:
    """How much of the move ``current → target`` opens or increases a position (base coin, ≥ 0):
    the part that is not reduce-only and so must meet the venue's minimum notional."""
    if target == 0 or abs(target) <= abs(current) and (current > 0) == (target > 0):
        return ZERO
    if current == 0 or (current > 0) != (target > 0):
        return abs(target)                              # a new position, or a flip's open leg
    return abs(target) - abs(current)


def intent_id(instrument: str, bar_time_ms: int, leg: OrderLeg) -> str:
    """Deterministic intent id: uuid5 of (instrument, bar time, position before and after the leg,
    side, ``"v1"``). The same target from the same position on the same bar always gives the same
    id, so the executor's ``orderLinkId`` recognises a re-sent intent."""
    return deterministic_id("risk.intent", INTENT_VERSION, instrument, bar_time_ms,
                            canon(leg.position_before), canon(leg.position_after), leg.side)


def flatten_intent_id(cause_id: str, instrument: str, index: int = 0) -> str:
    """Deterministic id of a breaker flatten order: uuid5 of the cause (the id of the breaker
    transition event, or of the snapshot that found a residual position), instrument and leg."""
    return deterministic_id("risk.flatten", INTENT_VERSION, cause_id, instrument, index)
