"""Order lifecycle events: approved/rejected by risk, reported/filled by the executor."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from tm_common.events.base import BarEventBody, EventBody, FundingEventBody, register

Side = Literal["Buy", "Sell"]


@register
class OrderApproved(EventBody, frozen=True, kw_only=True):
    """An order intent approved by risk. ``intent_id`` is deterministic: same target → same id."""

    TYPE = "order.approved"
    SCHEMA_VERSION = 1

    intent_id: str
    instrument: str
    bar_time_ms: int
    side: Side
    qty: Decimal
    order_type: Literal["Market", "Limit"] = "Market"
    price: Decimal | None = None
    reduce_only: bool = False
    target_qty: Decimal
    reason: str = ""


@register
class OrderRejected(BarEventBody, frozen=True, kw_only=True):
    """A target or order that was not executed, with the reason (risk limit, venue rejection)."""

    TYPE = "order.rejected"
    SCHEMA_VERSION = 1

    reason: str
    intent_id: str = ""
    source: Literal["risk", "executor"] = "risk"
    ret_code: int | None = None


@register
class OrderReported(EventBody, frozen=True, kw_only=True):
    """The venue's answer for an intent: its order id and status."""

    TYPE = "order.reported"
    SCHEMA_VERSION = 1

    intent_id: str
    order_link_id: str
    order_id: str
    instrument: str
    status: str
    ret_code: int = 0
    ret_msg: str = "OK"


@register
class OrderFilled(EventBody, frozen=True, kw_only=True):
    """One execution (fill). ``fee`` is positive when paid, in ``fee_currency`` (USDT)."""

    TYPE = "order.filled"
    SCHEMA_VERSION = 1

    intent_id: str
    order_link_id: str
    order_id: str
    exec_id: str
    instrument: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str = "USDT"
    is_maker: bool = False
    exec_time_ms: int


@register
class FundingSettled(FundingEventBody, frozen=True, kw_only=True):
    """A funding payment on an open position; ``payment`` > 0 is paid by the account."""

    TYPE = "funding.settled"
    SCHEMA_VERSION = 1

    position_qty: Decimal
    mark_price: Decimal
    payment: Decimal


@register
class PositionReconciled(EventBody, frozen=True, kw_only=True):
    """The exchange's position differed from the portfolio's view and was adopted."""

    TYPE = "position.reconciled"
    SCHEMA_VERSION = 1

    instrument: str
    exchange_qty: Decimal
    portfolio_qty: Decimal
    avg_price: Decimal
    reason: str


@register
class BalanceReconciled(EventBody, frozen=True, kw_only=True):
    """The venue's USDT wallet balance differed from the portfolio's cash while nothing was in
    flight, and the difference was adopted as an external flow (a deposit or withdrawal, an
    opening balance other than the configured one, or a cash effect the mesh never saw).
    ``amount`` = ``venue_balance - portfolio_cash`` (> 0: money came in). The portfolio books it
    as a transfer: cash and equity move, PnL does not, and the drawdown is not moved by it."""

    TYPE = "balance.reconciled"
    SCHEMA_VERSION = 1

    venue_balance: Decimal
    portfolio_cash: Decimal
    amount: Decimal
    snapshot_bar_ms: int
    reason: str
