"""The executor handler's committed state (open orders, funding and delivery look-ups, the venue
stop's fills published, the guard's view) and the fill event it publishes for a venue execution.
Kept apart from :mod:`tm_executor.handler` so that the WebSocket, the poller and the stop keeper
build fills the same way without importing the handler."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from tm_common.events import OrderFilled

from tm_executor.domain.guard import GuardView
from tm_executor.domain.orders import VenueExecution

#: How many venue stop-loss fills' exec ids the state keeps (to publish each once).
STOP_FILLS_KEPT = 1000


class OpenOrder(msgspec.Struct, kw_only=True):
    intent_id: str
    link_id: str
    order_id: str
    instrument: str
    side: str
    qty: Decimal
    status: str
    correlation_id: str
    ts_event_ns: int
    filled: Decimal = Decimal(0)
    seen: list[str] = msgspec.field(default_factory=list)


class HandlerState(msgspec.Struct, kw_only=True):
    open: dict[str, OpenOrder] = msgspec.field(default_factory=dict)
    # newest funding settlement published per instrument (venue time, ms)
    funding_ms: dict[str, int] = msgspec.field(default_factory=dict)
    # end of the newest funding look-up per instrument (venue time, ms; domain.funding)
    funding_asked_ms: dict[str, int] = msgspec.field(default_factory=dict)
    # the delisting time whose Delivery executions were asked for, per instrument
    delivery_asked_ms: dict[str, int] = msgspec.field(default_factory=dict)
    # exec ids of the venue stop-loss fills published (tm_executor.stops), newest last
    stop_fills: list[str] = msgspec.field(default_factory=list)
    guard: GuardView = msgspec.field(default_factory=GuardView)


_ENCODER = msgspec.json.Encoder(decimal_format="string")
_DECODER = msgspec.json.Decoder(HandlerState)


def encode_state(state: HandlerState) -> bytes:
    return _ENCODER.encode(state)


def decode_state(data: bytes | None) -> HandlerState:
    """The saved state, or a fresh one when none was saved."""
    return _DECODER.decode(data) if data else HandlerState()


def fill_event(intent_id: str, f: VenueExecution) -> OrderFilled:
    return OrderFilled(intent_id=intent_id, order_link_id=f.order_link_id, order_id=f.order_id,
                       exec_id=f.exec_id, instrument=f.symbol, side=f.side,  # type: ignore[arg-type]
                       qty=f.qty, price=f.price, fee=f.fee, is_maker=f.is_maker,
                       exec_time_ms=f.exec_time_ms)
