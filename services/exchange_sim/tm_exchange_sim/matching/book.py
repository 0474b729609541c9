"""The matching engine's book: its orders, executions, closed PnL and queued events, how a fill
or a close of an order changes them, and what may be read from them.

:class:`EngineBook` is the base of :class:`tm_exchange_sim.matching.engine.MatchingEngine`, which
adds the rules (the requests and the clock). Pure, as the engine: no I/O, no wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from tm_common.instruments import CLOSED

from tm_exchange_sim.matching.account import Account
from tm_exchange_sim.matching.costs import FeeSchedule, SlippageModel
from tm_exchange_sim.matching.ids import IdFactory
from tm_exchange_sim.matching.instruments import Instrument
from tm_exchange_sim.matching.models import (
    CANCELLED,
    FILLED,
    PARTIALLY_FILLED,
    ZERO,
    Bar,
    ClosedPnl,
    Execution,
    Order,
)

Event = tuple[str, object]


class EngineBook:
    """The engine's state and its bookkeeping; :class:`MatchingEngine` adds the rules."""

    def __init__(self, instruments: Mapping[str, Instrument], *,
                 initial_balance: Decimal = Decimal(100000),
                 fees: FeeSchedule | None = None, slippage: SlippageModel | None = None,
                 default_leverage: Decimal = Decimal(10), seed: int = 0,
                 funding_rates: Mapping[str, Mapping[int, Decimal]] | None = None,
                 now_ms: int = 0) -> None:
        # a listing whose delisting time the clock starts past is closed already
        self.instruments = {s: replace(i, status=CLOSED) if 0 < i.delivery_time_ms <= now_ms
                            else i for s, i in instruments.items()}
        self.fees = fees or FeeSchedule()
        self.slippage = slippage or SlippageModel()
        self.account = Account(initial_balance, default_leverage)
        self.funding_rates = {s: dict(r) for s, r in (funding_rates or {}).items()}
        self.funding_times = {s: sorted(r) for s, r in self.funding_rates.items()}
        self.ids = IdFactory(seed)
        self.now_ms = now_ms
        self.position_mode = 0
        self.marks: dict[str, Decimal] = {}
        self.last_bars: dict[str, Bar] = {}
        self.orders: dict[str, Order] = {}
        # Orders that may still be open, in placement order: an order never reopens, so a
        # closed one is dropped when next met (matching every bar scanned every order ever
        # placed, quadratic over a long replay).
        self._maybe_open: dict[str, Order] = {}
        self.link_ids: dict[str, str] = {}
        self.executions: list[Execution] = []
        # The execution list's lookups by order (``/v5/execution/list?orderLinkId=``): the
        # executor asks after every order, and a scan of the whole list made a long replay
        # quadratic.
        self.executions_by_order: dict[str, list[Execution]] = {}
        self.executions_by_link: dict[str, list[Execution]] = {}
        self.executions_by_kind: dict[tuple[str, str], list[Execution]] = {}  # (symbol, execType)
        self.closed_pnl: list[ClosedPnl] = []
        self._events: list[Event] = []

    def _record_execution(self, ex: Execution) -> None:
        self.executions.append(ex)
        if ex.order_id:
            self.executions_by_order.setdefault(ex.order_id, []).append(ex)
        if ex.order_link_id:
            self.executions_by_link.setdefault(ex.order_link_id, []).append(ex)
        self.executions_by_kind.setdefault((ex.symbol, ex.exec_type), []).append(ex)

    # ---- queries -----------------------------------------------------------------------
    def find_order(self, order_id: str | None = None,
                   order_link_id: str | None = None) -> Order | None:
        if order_id:
            return self.orders.get(order_id)
        if order_link_id:
            oid = self.link_ids.get(order_link_id)
            return self.orders.get(oid) if oid else None
        return None

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """The open orders (of ``symbol``), in placement order."""
        out = []
        for o in list(self._maybe_open.values()):
            if not o.is_open:
                del self._maybe_open[o.order_id]
            elif symbol is None or o.symbol == symbol:
                out.append(o)
        return out

    def available_balance(self) -> Decimal:
        return self.account.available(self.marks, self.open_orders(), self.fees.taker_rate)

    def wallet(self) -> dict[str, Decimal]:
        acc = self.account
        open_orders = self.open_orders()
        upnl = acc.unrealised_pnl(self.marks)
        pos_im = acc.position_im(self.marks)
        ord_im = acc.order_im(open_orders, self.fees.taker_rate)
        equity = acc.wallet_balance + upnl
        return {"wallet_balance": acc.wallet_balance, "equity": equity,
                "unrealised_pnl": upnl, "position_im": pos_im, "order_im": ord_im,
                "available": equity - pos_im - ord_im,
                "cum_realised_pnl": acc.wallet_balance - acc.deposits}

    def pop_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # ---- bookkeeping -------------------------------------------------------------------
    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, is_maker: bool,
              at_ms: int | None = None) -> None:
        now = self.now_ms if at_ms is None else at_ms
        fee = self.fees.fee(qty, price, is_maker)
        order.cum_exec_qty += qty
        order.cum_exec_value += qty * price
        order.cum_exec_fee += fee
        order.status = FILLED if order.cum_exec_qty >= order.qty else PARTIALLY_FILLED
        order.updated_ms = now
        order.seq = self.ids.seq()
        self._emit_order(order)
        self._book_execution(order.symbol, order.side, qty, price, at_ms=now, order=order,
                             fee=fee, is_maker=is_maker)

    def _book_execution(self, symbol: str, side: str, qty: Decimal, price: Decimal, *,
                        at_ms: int, exec_type: str = "Trade", order: Order | None = None,
                        fee: Decimal = ZERO, is_maker: bool = False) -> None:
        """Book a trade of ``qty`` at ``price`` into the account: its execution, closed PnL
        and events. ``order`` is None for the venue's own (a ``Delivery``)."""
        result = self.account.apply_fill(symbol, side, qty, price, fee, at_ms)
        ex = Execution(exec_id=self.ids.next("exec"),
                       order_id=order.order_id if order else "",
                       order_link_id=order.order_link_id if order else "", symbol=symbol,
                       side=side, exec_type=exec_type, exec_price=price, exec_qty=qty,
                       exec_value=qty * price, exec_fee=fee,
                       fee_rate=self.fees.rate(is_maker) if order else ZERO,
                       is_maker=is_maker, exec_time_ms=at_ms,
                       order_type=order.order_type if order else "UNKNOWN",
                       order_price=order.price if order else None,
                       order_qty=order.qty if order else ZERO,
                       leaves_qty=order.leaves_qty if order else ZERO,
                       closed_size=result.closed_size,
                       mark_price=self.marks.get(symbol, price),
                       seq=order.seq if order else self.ids.seq(),
                       create_type=order.create_type if order else "",
                       stop_order_type=order.stop_order_type if order else "")
        self._record_execution(ex)
        if result.closed_size:
            self.closed_pnl.append(ClosedPnl(
                symbol=symbol, order_id=ex.order_id, side=side, order_type=ex.order_type,
                qty=order.qty if order else qty,
                order_price=price if order is None or order.price is None else order.price,
                closed_size=result.closed_size, cum_entry_value=result.closed_entry_value,
                cum_exit_value=result.closed_size * price,
                closed_pnl=result.realised_pnl - result.open_fee - result.close_fee
                - result.funding, open_fee=result.open_fee, close_fee=result.close_fee,
                leverage=self.account.position(symbol).leverage, created_ms=at_ms))
        self._events.append(("execution", ex))
        self._emit_position(symbol)
        self._events.append(("wallet", None))

    def _close_order(self, order: Order, reason: str) -> None:
        order.status = CANCELLED
        order.reject_reason = reason
        if order.cancel_type == "UNKNOWN":
            order.cancel_type = "CancelByUser" if reason == "EC_PerCancelRequest" else \
                "CancelBySystem"
        order.updated_ms = self.now_ms
        order.seq = self.ids.seq()
        self._emit_order(order)
        self._events.append(("wallet", None))

    def _emit_order(self, order: Order) -> None:
        self._events.append(("order", replace(order)))

    def _emit_position(self, symbol: str) -> None:
        pos = self.account.position(symbol)
        pos.seq = self.ids.seq()
        self._events.append(("position", replace(pos)))
