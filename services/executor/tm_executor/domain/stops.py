"""The stop loss resting on the venue: where it belongs, and which venue fills are its own.

The mesh protects a position by acting on what it sees (the breaker, the loss limits, the
intra-bar marks), so that protection needs the mesh running. The venue stop is the backstop for
when it is not: each position in a traded symbol carries a Bybit position stop loss
(``/v5/position/trading-stop``, ``tpslMode=Full``: the venue closes the whole position with a
market order when its last price crosses the stop) placed where **this position alone has lost
``loss_ratio`` of the account's equity**, measured from its average entry price::

    long:  stop = avg - loss_ratio * equity / |qty|     (no stop when that is <= 0)
    short: stop = avg + loss_ratio * equity / |qty|

A loss the mesh would never have let happen (the breaker trips on a 5 % drawdown by default, the
default ratio is 10 %), so a running mesh has acted long before the venue does; a small position
gets a far stop, a large one a near one. The price is rounded to the tick away from the market
(a long's down, a short's up), so the loss at the stop never exceeds the ratio.

A stop is moved only when it is missing or the one in place is off by more than
:data:`MOVE_TOLERANCE` of the stop's distance (equity and the entry drift every bar; Bybit
answers "not modified" to the same price, and a call a minute for a cent helps no one).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

#: A stop in place is moved when it is off the wanted price by more than this part of the
#: wanted stop's distance from the entry.
MOVE_TOLERANCE = Decimal("0.1")
#: What Bybit calls the order (and its executions) the venue creates when a position's stop
#: loss triggers (``stopOrderType``).
STOP_LOSS = "StopLoss"
#: The prefix of the ``intent_id`` a stop's fill is published under (no intent of ours).
STOP_INTENT_PREFIX = "stop:"


def stop_price(qty: Decimal, avg_price: Decimal, equity: Decimal, loss_ratio: float,
               tick: Decimal) -> Decimal | None:
    """The stop of a position of signed ``qty`` entered at ``avg_price`` that loses
    ``loss_ratio`` x ``equity`` when hit, on ``tick``; ``None`` when there is nothing to place
    (no position, no equity, the ratio 0, or a long that cannot lose that much)."""
    if qty == 0 or avg_price <= 0 or equity <= 0 or loss_ratio <= 0 or tick <= 0:
        return None
    distance = Decimal(str(loss_ratio)) * equity / abs(qty)
    if qty > 0:
        price = ((avg_price - distance) / tick).to_integral_value(ROUND_FLOOR) * tick
        return price if price > 0 else None
    return ((avg_price + distance) / tick).to_integral_value(ROUND_CEILING) * tick


def needs_move(current: Decimal, wanted: Decimal | None, avg_price: Decimal) -> bool:
    """Whether the stop in place (``current``; 0 = none) must change to ``wanted`` (None:
    none wanted, so one in place is cancelled)."""
    if wanted is None:
        return current != 0
    if current == 0:
        return True
    return abs(current - wanted) > MOVE_TOLERANCE * abs(avg_price - wanted)


def is_stop_fill(row: Mapping[str, Any]) -> bool:
    """A venue execution row that a position's stop loss made (a trade of the venue's own
    order, ``stopOrderType`` StopLoss)."""
    return row.get("execType") == "Trade" and row.get("stopOrderType") == STOP_LOSS


def stop_intent_id(symbol: str, order_id: str) -> str:
    return f"{STOP_INTENT_PREFIX}{symbol}:{order_id}"
