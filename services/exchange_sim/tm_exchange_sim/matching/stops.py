"""A position's stop loss resting on the venue, as Bybit's ``POST /v5/position/trading-stop``
sets it (Full mode: the whole position; the "disaster stop" that protects a position while the
trading mesh is down).

The rules, pure (values in, a verdict or a record out); :class:`MatchingEngine` applies them:

- setting one: the symbol must hold a position; the stop must be a positive multiple of the
  tick size, below the last price for a long (Buy) position and above it for a short (Sell);
  "0" cancels it; setting the one already set is Bybit's 34040 (not modified).
- triggering: in each bar, before the resting orders are matched, a long's stop triggers when
  the bar's low reaches it, a short's when its high does (whatever ``slTriggerBy`` says: the
  sim has only its bars). The venue then closes the whole position with a reduce-only market
  order of its own (``stopOrderType`` "StopLoss", ``createType`` "CreateByStopLoss"), filled at
  the stop price, or at the bar's open when the bar opened beyond the stop (a gap), with the
  engine's adverse slippage and the taker fee.
"""

from __future__ import annotations

from decimal import Decimal

from tm_exchange_sim.matching.errors import params_error
from tm_exchange_sim.matching.instruments import Instrument
from tm_exchange_sim.matching.models import BUY, MARKET, SELL, Bar, Order, Position

STOP_LOSS = "StopLoss"                    # the stop's order: stopOrderType
CREATE_BY_STOP_LOSS = "CreateByStopLoss"  # the stop's order: createType
SL_TRIGGER_BY = ("LastPrice", "MarkPrice", "IndexPrice")
DEFAULT_SL_TRIGGER_BY = "LastPrice"


def check_stop_loss(inst: Instrument, pos: Position, stop: Decimal, last: Decimal) -> None:
    """Raise Bybit's 10001 when ``stop`` (not 0) cannot protect ``pos`` (open) at the last
    price ``last``: off the tick grid, not positive, or on the wrong side of ``last``."""
    if stop <= 0 or stop % inst.tick_size != 0:
        raise params_error(f"StopLoss:{stop} invalid: it must be a positive multiple of "
                           f"tickSize {inst.tick_size} for {inst.symbol}")
    if pos.size > 0 and stop >= last:
        raise params_error(f"StopLoss:{stop} set for Buy position should lower than "
                           f"base_price:{last}")
    if pos.size < 0 and stop <= last:
        raise params_error(f"StopLoss:{stop} set for Sell position should greater than "
                           f"base_price:{last}")


def stop_reference(pos: Position, bar: Bar) -> Decimal | None:
    """The price (before slippage) at which ``pos``'s stop fills in ``bar``: the stop, or the
    bar's open when the bar opened beyond it; ``None`` when there is no stop or the bar does
    not reach it."""
    stop = pos.stop_loss
    if not stop or pos.size == 0:
        return None
    if pos.size > 0:
        return min(bar.open, stop) if bar.low <= stop else None
    return max(bar.open, stop) if bar.high >= stop else None


def stop_order(pos: Position, order_id: str, seq: int, at_ms: int) -> Order:
    """The venue's market order that closes the whole of ``pos`` when its stop triggers."""
    return Order(order_id=order_id, order_link_id="", symbol=pos.symbol,
                 side=SELL if pos.size > 0 else BUY, order_type=MARKET, qty=abs(pos.size),
                 price=None, time_in_force="IOC", reduce_only=True, close_on_trigger=True,
                 created_ms=at_ms, updated_ms=at_ms, seq=seq, stop_order_type=STOP_LOSS,
                 create_type=CREATE_BY_STOP_LOSS, trigger_price=pos.stop_loss,
                 trigger_by=pos.sl_trigger_by)


__all__ = ["CREATE_BY_STOP_LOSS", "DEFAULT_SL_TRIGGER_BY", "SL_TRIGGER_BY", "STOP_LOSS",
           "check_stop_loss", "stop_order", "stop_reference"]
