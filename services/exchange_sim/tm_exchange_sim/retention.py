"""Bybit's history windows and retention for ``/v5/order/history`` and
``/v5/position/closed-pnl``, on the venue's clock (pure: values in, a verdict out).

Query window (both endpoints, on ``createdTime``): neither ``startTime`` nor ``endTime`` = the
last 7 days; ``startTime`` only = [start, start + 7 days]; ``endTime`` only = [end - 7 days,
end]; both = [start, end], which may not span more than 7 days (10001).

Retention of an order in the history (Bybit: "orders in the last 7 days: every closed status
except Cancelled/Rejected/Deactivated; in the last 24 hours: those too; beyond 7 days: orders
with fills only", kept 2 years): a closed order with a fill stays 2 years, a closed order
without one (cancelled before any fill) 24 hours, by its ``createdTime``. Open orders are not
history (``/v5/order/realtime`` serves them). Closed-PnL records stay 2 years.
"""

from __future__ import annotations

from tm_exchange_sim.matching import Order
from tm_exchange_sim.matching.errors import params_error

DAY_MS = 24 * 3600 * 1000
WINDOW_MS = 7 * DAY_MS
UNFILLED_KEPT_MS = DAY_MS
KEPT_MS = 2 * 365 * DAY_MS


def query_window(now_ms: int, start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    """``(start, end)`` inclusive (ms) by Bybit's rules above; 10001 when wider than 7 days
    or reversed."""
    if start_ms is None and end_ms is None:
        return now_ms - WINDOW_MS, now_ms
    if end_ms is None:
        assert start_ms is not None
        return start_ms, start_ms + WINDOW_MS
    if start_ms is None:
        return end_ms - WINDOW_MS, end_ms
    if end_ms < start_ms:
        raise params_error(f"endTime {end_ms} is before startTime {start_ms}")
    if end_ms - start_ms > WINDOW_MS:
        raise params_error("The time range between startTime and endTime cannot exceed 7 days")
    return start_ms, end_ms


def order_kept(order: Order, now_ms: int) -> bool:
    """Whether ``order`` is still in the order history at venue time ``now_ms``."""
    if order.is_open:
        return False
    kept = KEPT_MS if order.cum_exec_qty > 0 else UNFILLED_KEPT_MS
    return now_ms - order.created_ms <= kept


def record_kept(created_ms: int, now_ms: int) -> bool:
    """Whether a closed-PnL record made at ``created_ms`` is still served."""
    return now_ms - created_ms <= KEPT_MS
