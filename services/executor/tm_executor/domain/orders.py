"""Venue records (Bybit V5 JSON → typed values), the intent check against the instrument's
filters, and the order request.

Amounts are ``Decimal`` parsed from Bybit's strings; nothing is rounded here: an intent whose
quantity does not fit the lot filters is rejected, never silently changed (sizing to lot steps
is the risk service's job).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tm_common.decimals import NotADecimal, finite_decimal
from tm_common.events import OrderApproved
from tm_common.instruments import InstrumentSpec

ZERO = Decimal(0)
# Bybit order states after which nothing more happens to the order.
TERMINAL_STATUSES = frozenset({"Filled", "Cancelled", "Rejected", "PartiallyFilledCanceled",
                               "Deactivated"})


class BadVenueRecord(ValueError):
    """A venue answer that lacks a field or carries a malformed number."""


def dec(record: Mapping[str, Any], name: str, default: Decimal | None = None) -> Decimal:
    value = record.get(name)
    if value in (None, ""):
        if default is not None:
            return default
        raise BadVenueRecord(f"missing {name}")
    try:
        return finite_decimal(value)
    except NotADecimal as e:
        raise BadVenueRecord(f"{name} is {e.reason}: {value!r}") from e


def text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        raise BadVenueRecord(f"missing {name}")
    return str(value)


@dataclass(frozen=True, slots=True)
class VenueOrder:
    order_id: str
    order_link_id: str
    symbol: str
    side: str
    order_type: str
    status: str
    qty: Decimal
    cum_exec_qty: Decimal

    @classmethod
    def from_bybit(cls, d: Mapping[str, Any]) -> VenueOrder:
        return cls(order_id=text(d, "orderId"), order_link_id=str(d.get("orderLinkId") or ""),
                   symbol=text(d, "symbol"), side=text(d, "side"),
                   order_type=str(d.get("orderType") or ""), status=text(d, "orderStatus"),
                   qty=dec(d, "qty"), cum_exec_qty=dec(d, "cumExecQty", ZERO))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class VenueExecution:
    exec_id: str
    order_id: str
    order_link_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    is_maker: bool
    exec_time_ms: int
    exec_type: str
    leaves_qty: Decimal

    @classmethod
    def from_bybit(cls, d: Mapping[str, Any]) -> VenueExecution:
        try:
            exec_time = int(d.get("execTime") or 0)
        except (TypeError, ValueError) as e:
            raise BadVenueRecord(f"execTime is not an integer: {d.get('execTime')!r}") from e
        maker = d.get("isMaker", False)
        return cls(exec_id=text(d, "execId"), order_id=str(d.get("orderId") or ""),
                   order_link_id=str(d.get("orderLinkId") or ""), symbol=text(d, "symbol"),
                   side=text(d, "side"), qty=dec(d, "execQty"), price=dec(d, "execPrice"),
                   fee=dec(d, "execFee", ZERO),
                   is_maker=maker if isinstance(maker, bool) else str(maker).lower() == "true",
                   exec_time_ms=exec_time, exec_type=str(d.get("execType") or "Trade"),
                   leaves_qty=dec(d, "leavesQty", ZERO))

    @property
    def is_trade(self) -> bool:
        return self.exec_type == "Trade"


def trade_fills(execs: Iterable[VenueExecution], order_id: str) -> list[VenueExecution]:
    """The order's trade executions, unique by ``exec_id``, in venue order (time, then id), so
    that handling the same answer twice yields the same output sequence."""
    seen: dict[str, VenueExecution] = {}
    for e in execs:
        if e.is_trade and e.order_id == order_id:
            seen.setdefault(e.exec_id, e)
    return sorted(seen.values(), key=lambda e: (e.exec_time_ms, e.exec_id))


def fills_complete(order: VenueOrder, fills: Iterable[VenueExecution]) -> bool:
    """True when the order is terminal and its fills add up to its executed quantity."""
    return order.terminal and sum((f.qty for f in fills), ZERO) == order.cum_exec_qty


def check_intent(intent: OrderApproved, spec: InstrumentSpec | None,
                 close: Decimal | None = None) -> str | None:
    """Why ``intent`` cannot be sent as is (None = it can). Checks shape and the instrument's
    lot and price filters (``spec``, as the venue's instruments-info gave them), and
    the minimum order value (Bybit ``minNotionalValue``, retCode 110094): qty × the limit price
    (a Limit order) or ``close``, the newest close known (a Market order; unchecked without
    one). Reduce-only orders are exempt, as on Bybit: closing must never be blocked."""
    if intent.qty <= 0:
        return f"qty must be > 0, got {intent.qty}"
    if intent.order_type == "Limit" and (intent.price is None or intent.price <= 0):
        return "a Limit order needs a positive price"
    if spec is None:
        return f"no instrument info for {intent.instrument}"
    if intent.qty % spec.qty_step != 0:
        return f"qty {intent.qty} is not a multiple of qtyStep {spec.qty_step}"
    if intent.qty < spec.min_order_qty:
        return f"qty {intent.qty} < minOrderQty {spec.min_order_qty}"
    limit = spec.max_mkt_order_qty if intent.order_type == "Market" else spec.max_order_qty
    if intent.qty > limit:
        return f"qty {intent.qty} > max {intent.order_type} qty {limit}"
    if intent.order_type == "Limit" and intent.price is not None \
            and intent.price % spec.tick_size != 0:
        return f"price {intent.price} is not a multiple of tickSize {spec.tick_size}"
    price = intent.price if intent.order_type == "Limit" else close
    if spec.min_notional > 0 and not intent.reduce_only and price is not None and price > 0:
        notional = intent.qty * price
        if notional < spec.min_notional:
            return (f"order value {notional:.4f} USDT (qty {intent.qty} × {price}) < "
                    f"minNotionalValue {spec.min_notional} USDT")
    return None


def order_params(intent: OrderApproved, link_id: str) -> dict[str, Any]:
    """``place_order`` parameters (one-way mode, positionIdx 0); numbers as Bybit strings."""
    params: dict[str, Any] = {
        "category": "linear", "symbol": intent.instrument, "side": intent.side,
        "orderType": intent.order_type, "qty": format(intent.qty, "f"), "orderLinkId": link_id,
        "positionIdx": 0}
    if intent.order_type == "Limit":
        params["price"] = format(intent.price, "f")
        params["timeInForce"] = "GTC"
    else:
        params["timeInForce"] = "IOC"
    if intent.reduce_only:
        params["reduceOnly"] = True
    return params
