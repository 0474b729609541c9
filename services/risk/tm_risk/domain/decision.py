"""One sized target through every rule → orders and/or a rejection, and the breaker's flatten.

:func:`decide_target`, in this order (fractions of equity, signed):

1. breaker OPEN → rejected ``"breaker OPEN"`` (no new exposure while open);
2. no snapshot / equity ≤ 0 / no price / unknown instrument / non-finite target → rejected;
3. HALF_OPEN → target × ``half_open_factor``;
4. limits (:mod:`~tm_risk.domain.limits`), the HRP budget cap included, against the current
   exposure of the other instruments (their expected position × last close / equity);
5. VaR (:mod:`~tm_risk.domain.var`) of the resulting portfolio. Too little history → a target that
   increases the instrument's exposure is rejected (``var_unavailable``), a reduction passes.
   Over the limit → every target is scaled by k = limit / VaR: the incoming one, and every other
   open position, by reduce-only orders to round(k × position). If k < ``var_min_scale`` it
   cannot fit: an increasing target is rejected (``var_cannot_fit``), a reduction passes unscaled;
6. target quantity (lot rounding), then the legs from the expected position; a tiny delta is
   skipped with a ``"skipped: …"`` rejection; no change → nothing (``hold``).

The functions read the state and never change it; the handler applies ``Decision.intended``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from tm_risk.domain.breaker import State
from tm_risk.domain.limits import apply_limits
from tm_risk.domain.params import RiskParams
from tm_risk.domain.sizing import (
    OrderLeg,
    flatten_intent_id,
    intent_id,
    plan_orders,
    round_qty,
    target_qty,
    tiny_delta_reason,
    to_decimal,
)
from tm_risk.domain.state import RiskState
from tm_risk.domain.var import VarResult, fit_scale, portfolio_var


@dataclass(frozen=True, slots=True)
class ApprovedOrder:
    instrument: str
    bar_time_ms: int
    intent_id: str
    leg: OrderLeg
    reason: str


@dataclass(frozen=True, slots=True)
class Rejection:
    instrument: str
    bar_time_ms: int
    code: str       # bounded: a metric label
    reason: str     # for people


@dataclass(frozen=True, slots=True)
class Decision:
    """``code``: ``approved``, ``hold``, or the rejection code. ``intended``: new expected
    positions (base coin) once ``orders`` fill. ``var``: VaR of the final portfolio (if known)."""

    code: str
    orders: tuple[ApprovedOrder, ...] = ()
    rejection: Rejection | None = None
    intended: Mapping[str, Decimal] = field(default_factory=dict)
    var: VarResult | None = None
    fraction: float | None = None
    notes: tuple[str, ...] = ()


def _reject(instrument: str, bar_time_ms: int, code: str, reason: str) -> Decision:
    return Decision(code, rejection=Rejection(instrument, bar_time_ms, code, reason))


def exposures(state: RiskState, params: RiskParams, equity: Decimal) -> dict[str, float]:
    """Signed exposure fraction of each configured symbol: expected position × price / equity."""
    out = {}
    for s in params.symbols:
        price = state.price(s)
        out[s] = float(state.position(s) * price / equity) if price else 0.0
    return out


def decide_target(state: RiskState, params: RiskParams, instrument: str, bar_time_ms: int,
                  fraction: float, tier: str = "") -> Decision:
    """The decision for one ``PositionSized`` (module docstring)."""
    rej = lambda code, why: _reject(instrument, bar_time_ms, code, why)
    mode = state.breaker.state
    if mode == State.OPEN:
        return rej("breaker_open", "breaker OPEN")
    if instrument not in params.symbols:
        return rej("unknown_instrument", f"instrument {instrument} is not configured")
    if not math.isfinite(fraction):
        return rej("invalid_target", f"target fraction {fraction!r} is not finite")
    equity = state.equity
    if equity is None:
        return rej("no_equity", "no portfolio snapshot yet")
    if equity <= 0:
        return rej("no_equity", f"equity {equity} USDT <= 0")
    price = state.price(instrument)
    if not price or price <= 0:
        return rej("no_price", f"no price for {instrument}")
    lot = params.instruments[instrument]
    notes: list[str] = [f"tier {tier}"] if tier else []
    t = fraction
    if mode == State.HALF_OPEN:
        t *= params.breaker.half_open_factor
        notes.append(f"HALF_OPEN x{params.breaker.half_open_factor:g}")

    eq = float(equity)
    expo = exposures(state, params, equity)
    model = state.market_model(params)
    capped = apply_limits(instrument, t, expo, eq, model.budgets[instrument], params)
    t = capped.fraction
    notes += capped.reasons
    cur_f = expo[instrument]
    increases = abs(t) > abs(cur_f) or t * cur_f < 0

    scale, var = 1.0, None
    n_obs = model.observations
    if n_obs < params.var_min_obs:
        if increases:
            return rej("var_unavailable", f"VaR needs {params.var_min_obs} aligned 4h returns, "
                       f"have {n_obs}")
        notes.append("VaR unavailable; reduction allowed")
    else:
        w = [t if s == instrument else expo[s] for s in params.symbols]
        var = portfolio_var(w, model.returns, params.var_horizon_bars, params.var_confidence,
                            cov=model.cov, windows=model.windows)
        if var.value > params.var_limit:
            k = fit_scale(var.value, params.var_limit)
            if k < params.var_min_scale:
                if increases:
                    return rej("var_cannot_fit",
                               f"VaR {var.value:.2%} > limit {params.var_limit:.2%}: fitting needs "
                               f"x{k:.4f} < min scale {params.var_min_scale:g}")
                notes.append(f"VaR {var.value:.2%} over limit; reduction allowed")
            else:
                scale = k
                notes.append(f"VaR {var.value:.2%} > {params.var_limit:.2%}: all targets x{k:.4f}")
                var = VarResult(var.parametric * k, var.historical * k, var.observations)
    t *= scale

    current = state.position(instrument)
    target = target_qty(t, equity, price, lot)
    orders: list[ApprovedOrder] = []
    intended: dict[str, Decimal] = {}
    rejection: Rejection | None = None
    reason = "; ".join(notes)
    if target != current:
        tiny = tiny_delta_reason(current, target, price, equity, lot,
                                 min_notional_usdt=params.min_notional_usdt,
                                 min_delta_fraction=params.min_delta_fraction)
        if tiny:
            rejection = Rejection(instrument, bar_time_ms, "tiny_delta", f"skipped: {tiny}")
        else:
            orders += _orders(instrument, bar_time_ms, plan_orders(current, target, lot), reason)
            intended[instrument] = target
    if scale < 1.0:
        k = to_decimal(scale)
        for s in params.symbols:
            cur = state.position(s)
            if s == instrument or cur == 0:
                continue
            new = round_qty(cur * k, params.instruments[s])
            p = state.price(s)
            if new == cur or not p or tiny_delta_reason(
                    cur, new, p, equity, params.instruments[s],
                    min_notional_usdt=params.min_notional_usdt,
                    min_delta_fraction=params.min_delta_fraction):
                continue
            why = f"VaR rescale x{scale:.4f} after {instrument} target"
            orders += _orders(s, bar_time_ms, plan_orders(cur, new, params.instruments[s]), why)
            intended[s] = new
    code = "approved" if orders else (rejection.code if rejection else "hold")
    return Decision(code, tuple(orders), rejection, intended, var, t, tuple(notes))


def _orders(instrument: str, bar_time_ms: int, legs: list[OrderLeg],
            reason: str) -> list[ApprovedOrder]:
    return [ApprovedOrder(instrument, bar_time_ms, intent_id(instrument, bar_time_ms, leg), leg,
                          reason) for leg in legs]


def flatten_orders(state: RiskState, params: RiskParams, cause_id: str,
                   reason: str) -> tuple[list[ApprovedOrder], dict[str, Decimal]]:
    """Reduce-only orders that close every expected non-zero position (breaker OPEN), with ids
    derived from ``cause_id`` (the breaker transition's event id, or the snapshot's), and the new
    expected positions (0). Positions below ``min_order_qty`` cannot be ordered and are left."""
    orders: list[ApprovedOrder] = []
    intended: dict[str, Decimal] = {}
    names = sorted(set(params.symbols) | set(state.positions) | set(state.intended))
    for s in names:
        lot = params.instruments.get(s)
        cur = state.position(s)
        if lot is None or cur == 0 or abs(cur) < lot.min_order_qty:
            continue
        bar = state.last_bar_open_ms.get(s, state.clock_ms // params.interval_ms * params.interval_ms)
        for i, leg in enumerate(plan_orders(cur, Decimal(0), lot, kind="flatten")):
            orders.append(ApprovedOrder(s, bar, flatten_intent_id(cause_id, s, i), leg, reason))
        intended[s] = Decimal(0)
    return orders, intended
