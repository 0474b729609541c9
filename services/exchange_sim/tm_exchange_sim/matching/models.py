"""Venue state records: bars in, orders, executions and positions out. Mutable on purpose:
the engine owns them and hands out copies (:func:`dataclasses.replace`) in its events."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

BUY = "Buy"
SELL = "Sell"
MARKET = "Market"
LIMIT = "Limit"
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")

NEW = "New"
PARTIALLY_FILLED = "PartiallyFilled"
FILLED = "Filled"
CANCELLED = "Cancelled"
OPEN_STATUSES = (NEW, PARTIALLY_FILLED)

ZERO = Decimal(0)


def side_sign(side: str) -> int:
    return 1 if side == BUY else -1


@dataclass(frozen=True, slots=True)
class Bar:
    """A closed bar as the venue sees it (Decimal prices)."""

    open_time_ms: int
    close_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated-shape order request (values already Decimal/str; checked by the engine)."""

    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None = None
    time_in_force: str = "GTC"
    reduce_only: bool = False
    close_on_trigger: bool = False
    order_link_id: str = ""
    position_idx: int = 0


@dataclass(slots=True)
class Order:
    order_id: str
    order_link_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    time_in_force: str
    reduce_only: bool
    close_on_trigger: bool
    created_ms: int
    updated_ms: int
    status: str = NEW
    cum_exec_qty: Decimal = ZERO
    cum_exec_value: Decimal = ZERO
    cum_exec_fee: Decimal = ZERO
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    seq: int = 0
    # a venue-created order (a position's stop loss triggered): Bybit's ``stopOrderType``
    # ("StopLoss"), ``createType`` ("CreateByStopLoss"), ``triggerPrice`` and ``triggerBy``
    stop_order_type: str = ""
    create_type: str = "CreateByUser"
    trigger_price: Decimal | None = None
    trigger_by: str = ""

    @property
    def leaves_qty(self) -> Decimal:
        return ZERO if self.status not in OPEN_STATUSES else self.qty - self.cum_exec_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_price(self) -> Decimal | None:
        if self.cum_exec_qty == 0:
            return None
        return self.cum_exec_value / self.cum_exec_qty


@dataclass(frozen=True, slots=True)
class Execution:
    exec_id: str
    order_id: str
    order_link_id: str
    symbol: str
    side: str
    exec_type: str  # "Trade", "Funding" or "Delivery"
    exec_price: Decimal
    exec_qty: Decimal
    exec_value: Decimal
    exec_fee: Decimal
    fee_rate: Decimal
    is_maker: bool
    exec_time_ms: int
    order_type: str
    order_price: Decimal | None
    order_qty: Decimal
    leaves_qty: Decimal
    closed_size: Decimal
    mark_price: Decimal
    seq: int
    create_type: str = ""        # the order's (none for the venue's Funding and Delivery)
    stop_order_type: str = ""    # the order's ("StopLoss" for a stop loss triggered)


@dataclass(slots=True)
class Position:
    """One-way position: ``size`` signed (+long/-short); ``entry_value`` = |size| x avg entry,
    kept exact so that a full close realises exactly ``|size| x price - entry_value``.
    ``stop_loss`` (``POST /v5/position/trading-stop``, Full mode: the whole size) rests on the
    venue until it triggers, or is cleared when the size returns to 0 or changes side."""

    symbol: str
    leverage: Decimal
    size: Decimal = ZERO
    entry_value: Decimal = ZERO
    realised_pnl: Decimal = ZERO       # since the position was last opened (curRealisedPnl)
    cum_realised_pnl: Decimal = ZERO   # lifetime, fees and funding included
    open_fee: Decimal = ZERO           # opening fees of the size still open (closed PnL)
    held_funding: Decimal = ZERO       # funding paid on the size still open (closed PnL)
    stop_loss: Decimal = ZERO          # the position's stop loss (Full mode); 0: none
    sl_trigger_by: str = ""            # its slTriggerBy ("" when none)
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = 0

    @property
    def side(self) -> str:
        return BUY if self.size > 0 else SELL if self.size < 0 else ""

    @property
    def avg_price(self) -> Decimal:
        return ZERO if self.size == 0 else self.entry_value / abs(self.size)

    def unrealised_pnl(self, mark: Decimal) -> Decimal:
        if self.size == 0:
            return ZERO
        return self.size * mark - (self.entry_value if self.size > 0 else -self.entry_value)

    def initial_margin(self, mark: Decimal) -> Decimal:
        return abs(self.size) * mark / self.leverage


@dataclass(frozen=True, slots=True)
class ClosedPnl:
    """One order's close of (part of) a position, as Bybit's ``/v5/position/closed-pnl``:
    ``closed_pnl`` = price PnL of the closed size - its share of the opening fees - the closing
    fee - its share of the funding paid while it was held."""

    symbol: str
    order_id: str
    side: str                 # the closing order's side
    order_type: str
    qty: Decimal              # the order's quantity
    order_price: Decimal
    closed_size: Decimal
    cum_entry_value: Decimal
    cum_exit_value: Decimal
    closed_pnl: Decimal
    open_fee: Decimal
    close_fee: Decimal
    leverage: Decimal
    created_ms: int

    @property
    def avg_entry_price(self) -> Decimal:
        return self.cum_entry_value / self.closed_size

    @property
    def avg_exit_price(self) -> Decimal:
        return self.cum_exit_value / self.closed_size
