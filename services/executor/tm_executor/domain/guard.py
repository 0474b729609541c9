"""The executor's guard: its own limits, the last line of defence before the venue.

Risk decides; the executor still refuses, on its own view and its own configuration, any
intent that would add exposure when it must not (:func:`check`, first refusal wins):

1. ``breaker_open``: the breaker (as published on ``risk.breaker``) is OPEN;
2. ``stale``: the intent's bar is more than ``max_intent_age_bars`` bars older than the newest
   bar known: the newest ``md.bar`` seen (every mode, deterministic) or, in the live modes,
   the newest bar closed by the clock;
3. ``no_price``: no price to value it (no ``md.bar`` close yet for a market order);
4. ``order_qty`` / ``order_notional``: the order's quantity or notional (qty × limit price or
   the newest close, USDT) is over the per-order cap;
5. ``position_qty`` / ``position_notional``: the position after it fills (the executor's own
   position, counted from the fills it published) would be over the per-position cap and
   larger than before.

An intent adds exposure unless it is reduce-only: the venue itself refuses a reduce-only order
that would open, grow or flip a position (Bybit ``110017``), so the guard needs no position view
to let reductions through, and it never stands between the book and flat (risk's flattening
legs and every reducing leg are reduce-only: ``tm_risk.domain.sizing.plan_orders``). Pure: values
in, a refusal or None out; the clock is passed in (``None`` in replay and backtest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
from tm_common.events import OrderApproved

ZERO = Decimal(0)
RULES = ("breaker_open", "stale", "no_price", "order_qty", "order_notional", "position_qty",
         "position_notional")


@dataclass(frozen=True)
class GuardLimits:
    """The caps (USDT, base-coin quantities per instrument; an instrument absent from a
    quantity map has no quantity cap of its own) and the staleness rule."""

    max_order_notional_usdt: Decimal
    max_position_notional_usdt: Decimal
    max_order_qty: Mapping[str, Decimal] = field(default_factory=dict)
    max_position_qty: Mapping[str, Decimal] = field(default_factory=dict)
    max_intent_age_bars: int = 1
    interval_ms: int = 240 * 60_000


class GuardView(msgspec.Struct, kw_only=True):
    """What the guard knows, part of the executor's committed state: the breaker as last
    published, the newest bar open time seen (any instrument), the newest close per
    instrument, and the signed position per instrument from the fills the executor published."""

    breaker: str = "CLOSED"
    breaker_reason: str = ""
    newest_bar_ms: int = 0
    closes: dict[str, Decimal] = msgspec.field(default_factory=dict)
    positions: dict[str, Decimal] = msgspec.field(default_factory=dict)
    # the newest intents whose fills were counted (a replayed intent is reported again by the
    # idempotent placement, its fills are not counted twice)
    counted: list[str] = msgspec.field(default_factory=list)


COUNTED_INTENTS = 512


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str


def signed(side: str, qty: Decimal) -> Decimal:
    return qty if side == "Buy" else -qty


def newest_closed_bar_ms(now_ms: int, interval_ms: int) -> int:
    """Open time of the newest bar closed at ``now_ms`` (ms UTC)."""
    return (now_ms // interval_ms) * interval_ms - interval_ms


def check(intent: OrderApproved, view: GuardView, limits: GuardLimits,
          now_ms: int | None = None) -> Refusal | None:
    """Why ``intent`` must not reach the venue (module docstring), or None. ``now_ms``: the
    clock in the live modes, None in replay and backtest (bar time only)."""
    if intent.reduce_only:
        return None
    if view.breaker == "OPEN":
        return Refusal("breaker_open", f"breaker OPEN ({view.breaker_reason or 'no reason'}) "
                       "and the intent is not reduce-only")
    newest = view.newest_bar_ms
    if now_ms is not None:
        newest = max(newest, newest_closed_bar_ms(now_ms, limits.interval_ms))
    age_bars = (newest - intent.bar_time_ms) // limits.interval_ms
    if age_bars > limits.max_intent_age_bars:
        return Refusal("stale", f"bar {intent.bar_time_ms} is {age_bars} bars older than the "
                       f"newest bar known ({newest}); at most {limits.max_intent_age_bars}")
    price = intent.price if intent.order_type == "Limit" else view.closes.get(intent.instrument)
    if price is None or price <= 0:
        return Refusal("no_price", f"no close known for {intent.instrument}: the notional "
                       "caps cannot be checked")
    inst, qty = intent.instrument, intent.qty
    cap = limits.max_order_qty.get(inst)
    if cap is not None and qty > cap:
        return Refusal("order_qty", f"qty {qty} over the per-order cap {cap}")
    notional = qty * price
    if notional > limits.max_order_notional_usdt:
        return Refusal("order_notional", f"notional {notional:.2f} USDT over the per-order cap "
                       f"{limits.max_order_notional_usdt} USDT")
    before = view.positions.get(inst, ZERO)
    after = before + signed(intent.side, qty)
    if abs(after) <= abs(before):
        return None
    cap = limits.max_position_qty.get(inst)
    if cap is not None and abs(after) > cap:
        return Refusal("position_qty", f"position {before} → {after} over the per-position "
                       f"cap {cap}")
    if abs(after) * price > limits.max_position_notional_usdt:
        return Refusal("position_notional", f"position {before} → {after} is "
                       f"{abs(after) * price:.2f} USDT, over the per-position cap "
                       f"{limits.max_position_notional_usdt} USDT")
    return None
