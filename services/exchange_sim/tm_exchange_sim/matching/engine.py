"""The matching engine: orders against a replayed price clock, one UNIFIED account.

Pure: no I/O, no wall clock, no unseeded randomness. Time moves only through :meth:`step`
(one bar closed for every symbol that has one), so a run is a function of (seed, requests, bars).
Market orders fill at the last close with adverse slippage (taker fee); limit orders rest until
a later bar trades through their price and then fill at that price (maker fee), or fill at once
as a taker when marketable on arrival. Funding settles at each funding time of the symbol's
rates: one at a bar close on the position held then (after the bar's fills), at that close; one
inside a bar (an interval under 4 h) at its own time, on the position held through the bar
(before the bar's fills), at the newest mark then (the previous close). A delisting
(instruments-info ``deliveryTime``) is carried out as Bybit does: at that time the symbol's open
orders are cancelled (``CancelBySettle``), its position is closed at the newest mark then (an
execution of type ``Delivery``, no fee; the close when the time is a bar close, else the
previous close), its status becomes ``Closed``, and every later order on it is refused.
A position's stop loss (``POST /v5/position/trading-stop``, Full mode:
:mod:`tm_exchange_sim.matching.stops`) rests on the venue: in a bar that reaches it (low for a
long, high for a short), before that bar's resting orders, the venue closes the whole position
with a reduce-only market order of its own at the stop (the bar's open when it gapped beyond),
with the adverse slippage and the taker fee; a position with no stop changes nothing.
A transfer (:meth:`MatchingEngine.transfer`) deposits or withdraws USDT (at most the available
balance). Every state change is queued as an event (``order``, ``execution``, ``position``,
``wallet``) for the private WebSocket or the backtest.
The state it keeps and books fills into is :mod:`tm_exchange_sim.matching.book`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal

from tm_common.instruments import CLOSED, TRADING

from tm_exchange_sim.matching.account import clear_stop
from tm_exchange_sim.matching.book import EngineBook
from tm_exchange_sim.matching.errors import (
    DUPLICATE_ORDER_LINK_ID,
    INSUFFICIENT_BALANCE,
    LEVERAGE_NOT_MODIFIED,
    ORDER_NOT_FOUND,
    POSITION_MODE_NOT_MODIFIED,
    REDUCE_ONLY_UNSATISFIED,
    TPSL_NOT_MODIFIED,
    VenueError,
    params_error,
)
from tm_exchange_sim.matching.instruments import Instrument
from tm_exchange_sim.matching.models import (
    BUY,
    LIMIT,
    MARKET,
    SELL,
    TIME_IN_FORCE,
    ZERO,
    Bar,
    Execution,
    Order,
    OrderRequest,
    side_sign,
)
from tm_exchange_sim.matching.stops import (
    DEFAULT_SL_TRIGGER_BY,
    check_stop_loss,
    stop_order,
    stop_reference,
)

MAX_ORDER_LINK_ID_LEN = 36
MAX_CANCEL_ALL = 500          # Bybit cancels at most 500 futures orders per cancel-all


class MatchingEngine(EngineBook):
    # ---- requests ----------------------------------------------------------------------
    def place_order(self, req: OrderRequest) -> Order:
        inst = self._instrument(req.symbol)
        self._check_shape(req)
        if req.order_link_id and req.order_link_id in self.link_ids:
            raise VenueError(DUPLICATE_ORDER_LINK_ID)
        if inst.status != TRADING:
            raise params_error(f"symbol {req.symbol} is not trading (status {inst.status})")
        market = req.order_type == MARKET
        inst.check_qty(req.qty, market=market)
        if not market:
            if req.price is None:
                raise params_error("price is required for Limit orders")
            inst.check_price(req.price)
        last = self.marks.get(req.symbol)
        if last is None:
            raise params_error(f"no market price for {req.symbol} yet: advance the replay clock")
        qty = req.qty
        if req.reduce_only:
            size = self.account.position(req.symbol).size
            if size == 0 or (size > 0) == (req.side == BUY):
                raise VenueError(REDUCE_ONLY_UNSATISFIED,
                                 "current position is zero or on the same side, "
                                 "cannot fix reduce-only order qty")
            qty = min(qty, abs(size))
        if not req.reduce_only and self.account.opening_qty(req.symbol, req.side, qty) > 0:
            inst.check_notional(qty, last if market or req.price is None else req.price)
        fill_price = self._taker_price(req, last, inst)
        marketable = market or (req.price is not None and _crosses(req.side, req.price, last))
        ref_price = fill_price if marketable or req.price is None else req.price
        self._check_margin(req.symbol, req.side, qty, ref_price, req.reduce_only)

        order = Order(order_id=self.ids.next("order"), order_link_id=req.order_link_id,
                      symbol=req.symbol, side=req.side, order_type=req.order_type, qty=qty,
                      price=req.price, time_in_force="IOC" if market else req.time_in_force,
                      reduce_only=req.reduce_only, close_on_trigger=req.close_on_trigger,
                      created_ms=self.now_ms, updated_ms=self.now_ms, seq=self.ids.seq())
        self.orders[order.order_id] = order
        self._maybe_open[order.order_id] = order
        if order.order_link_id:
            self.link_ids[order.order_link_id] = order.order_id
        if marketable and req.time_in_force == "PostOnly":
            self._close_order(order, "EC_PostOnlyWillTakeLiquidity")
        elif marketable:
            self._fill(order, qty, fill_price, is_maker=False)
        elif order.time_in_force in ("IOC", "FOK"):
            self._close_order(order, "EC_NoImmediateQtyToFill")
        else:
            self._emit_order(order)
        return order

    def cancel_order(self, symbol: str, order_id: str | None = None,
                     order_link_id: str | None = None) -> Order:
        self._instrument(symbol)
        order = self.find_order(order_id, order_link_id)
        if order is None or order.symbol != symbol or not order.is_open:
            raise VenueError(ORDER_NOT_FOUND, "order not exists or too late to cancel")
        order.cancel_type = "CancelByUser"
        self._close_order(order, "EC_PerCancelRequest")
        return order

    def amend_order(self, symbol: str, order_id: str | None = None,
                    order_link_id: str | None = None, *, qty: Decimal | None = None,
                    price: Decimal | None = None) -> Order:
        """Change an open limit order's ``qty`` and/or ``price`` (Bybit ``/v5/order/amend``).
        The new quantity must exceed what has filled; the filters, the min notional and the
        margin apply to the amended order; an amended price that now crosses the last price
        fills at once as a taker (a PostOnly order is cancelled instead)."""
        inst = self._instrument(symbol)
        order = self.find_order(order_id, order_link_id)
        if order is None or order.symbol != symbol or not order.is_open:
            raise VenueError(ORDER_NOT_FOUND, "order not exists or too late to amend")
        new_qty = order.qty if qty is None else qty
        new_price = order.price if price is None else price
        if new_qty == order.qty and new_price == order.price:
            raise params_error("The order remains unchanged as the parameters entered match "
                               "the existing ones.")
        if new_price is None:
            raise params_error("a market order has no price to amend")
        inst.check_qty(new_qty, market=False)
        inst.check_price(new_price)
        if new_qty <= order.cum_exec_qty:
            raise params_error(f"Qty invalid: {new_qty} must exceed the filled qty "
                               f"{order.cum_exec_qty}")
        if not order.reduce_only:
            inst.check_notional(new_qty, new_price)
        previous = (order.qty, order.price)
        order.qty, order.price = new_qty, new_price
        if self.available_balance() < 0:
            order.qty, order.price = previous
            raise VenueError(INSUFFICIENT_BALANCE)
        order.updated_ms = self.now_ms
        order.seq = self.ids.seq()
        last = self.marks[symbol]
        if _crosses(order.side, new_price, last):
            if order.time_in_force == "PostOnly":
                self._close_order(order, "EC_PostOnlyWillTakeLiquidity")
            else:
                req = OrderRequest(symbol, order.side, LIMIT, order.leaves_qty, new_price)
                self._fill(order, order.leaves_qty, self._taker_price(req, last, inst),
                           is_maker=False)
        else:
            self._emit_order(order)
            self._events.append(("wallet", None))
        return order

    def cancel_all(self, symbol: str | None = None, base_coin: str | None = None,
                   settle_coin: str | None = None) -> list[Order]:
        """Cancel the open orders of ``symbol``, else of ``base_coin``, else of ``settle_coin``
        (Bybit's priority; at most :data:`MAX_CANCEL_ALL`); returns them."""
        if symbol:
            self._instrument(symbol)
            chosen = [o for o in self.open_orders() if o.symbol == symbol]
        elif base_coin:
            chosen = [o for o in self.open_orders()
                      if self.instruments[o.symbol].base_coin == base_coin]
        elif settle_coin:
            chosen = [o for o in self.open_orders()
                      if self.instruments[o.symbol].quote_coin == settle_coin]
        else:
            raise params_error("symbol, baseCoin or settleCoin is required for linear")
        chosen = chosen[:MAX_CANCEL_ALL]
        for order in chosen:
            order.cancel_type = "CancelByUser"
            self._close_order(order, "EC_PerCancelRequest")
        return chosen

    def set_leverage(self, symbol: str, buy_leverage: Decimal, sell_leverage: Decimal) -> None:
        inst = self._instrument(symbol)
        if inst.status != TRADING:
            raise params_error(f"symbol {symbol} is not trading (status {inst.status})")
        if buy_leverage != sell_leverage:
            raise params_error("buyLeverage must equal sellLeverage in one-way mode")
        inst.check_leverage(buy_leverage)
        pos = self.account.position(symbol)
        if pos.leverage == buy_leverage:
            raise VenueError(LEVERAGE_NOT_MODIFIED)
        previous, pos.leverage = pos.leverage, buy_leverage
        if self.available_balance() < 0:
            pos.leverage = previous
            raise VenueError(INSUFFICIENT_BALANCE, "available balance insufficient for leverage")
        pos.updated_ms = self.now_ms
        self._emit_position(symbol)

    def set_trading_stop(self, symbol: str, stop_loss: Decimal,
                         sl_trigger_by: str = DEFAULT_SL_TRIGGER_BY) -> None:
        """Set (or, with 0, cancel) the stop loss of ``symbol``'s whole position (Bybit
        ``/v5/position/trading-stop``, Full mode), checked against the last price; 34040 when
        it is the one already set."""
        inst = self._instrument(symbol)
        if inst.status != TRADING:
            raise params_error(f"symbol {symbol} is not trading (status {inst.status})")
        pos = self.account.positions.get(symbol)
        if pos is None or pos.size == 0:
            raise params_error("can not set tp/sl/ts for zero position")
        if stop_loss == pos.stop_loss and (not stop_loss or sl_trigger_by == pos.sl_trigger_by):
            raise VenueError(TPSL_NOT_MODIFIED)
        if stop_loss:
            check_stop_loss(inst, pos, stop_loss, self.marks[symbol])
            pos.stop_loss, pos.sl_trigger_by = stop_loss, sl_trigger_by
        else:
            clear_stop(pos)
        pos.updated_ms = self.now_ms
        self._emit_position(symbol)

    def switch_mode(self, mode: int) -> None:
        if mode not in (0, 3):
            raise params_error("mode must be 0 (one-way) or 3 (hedge)")
        if mode == self.position_mode:
            raise VenueError(POSITION_MODE_NOT_MODIFIED)
        raise params_error("the exchange sim supports one-way mode (0) only")

    def transfer(self, amount: Decimal | int | float | str) -> Decimal:
        """Deposit (``amount`` > 0) or withdraw (< 0) USDT: the wallet and the deposits move by
        it (:meth:`Account.transfer`); a withdrawal may take at most the available balance the
        order checks use. Returns the amount booked; queues a ``wallet`` event.

        Raises:
            ValueError: refused (not a finite non-zero number, or above the available
                balance); nothing changed.
        """
        booked = self.account.transfer(amount, available=self.available_balance())
        self._events.append(("wallet", None))
        return booked

    # ---- the clock ---------------------------------------------------------------------
    def step(self, close_time_ms: int, bars: Mapping[str, Bar]) -> None:
        """Settle the funding due inside the bar (after the clock, before ``close_time_ms``),
        close one bar per symbol in ``bars`` (symbols without a bar keep their mark), then
        move the clock to ``close_time_ms`` and settle funding due at that instant; a
        delivery due inside the bar is carried out before its fills, one at its close after."""
        for symbol in sorted(self.funding_times):
            times = self.funding_times[symbol]
            inside = times[bisect_right(times, self.now_ms):bisect_left(times, close_time_ms)]
            for t in inside if symbol in self.marks else ():
                self._settle_funding(symbol, self.funding_rates[symbol][t], at_ms=t)
        due = self._deliveries_due(close_time_ms)
        for symbol, at_ms in due:
            if at_ms < close_time_ms:
                self._deliver(symbol, at_ms)
        for symbol in sorted(bars):
            bar = bars[symbol]
            self._trigger_stop(symbol, bar)
            self._match_resting(symbol, bar)
            self.marks[symbol] = bar.close
            self.last_bars[symbol] = bar
        self.now_ms = close_time_ms
        for symbol in sorted(self.funding_rates):
            rate = self.funding_rates[symbol].get(close_time_ms)
            if rate is not None and symbol in self.marks:
                self._settle_funding(symbol, rate)
        for symbol, at_ms in due:
            if at_ms == close_time_ms:
                self._deliver(symbol, at_ms)

    def list_instrument(self, inst: Instrument) -> None:
        """Serve ``inst`` from now on (the venue changed a filter, scheduled or moved a
        delisting); one whose delisting time the clock has passed is delivered now."""
        self.instruments[inst.symbol] = inst
        if 0 < inst.delivery_time_ms <= self.now_ms:
            self._deliver(inst.symbol, self.now_ms)

    def _deliveries_due(self, until_ms: int) -> list[tuple[str, int]]:
        """(symbol, deliveryTime) of the listings not closed whose delisting falls after the
        clock and at or before ``until_ms``."""
        return sorted((s, i.delivery_time_ms) for s, i in self.instruments.items()
                      if i.status != CLOSED and self.now_ms < i.delivery_time_ms <= until_ms)

    def _deliver(self, symbol: str, at_ms: int) -> None:
        """Delist ``symbol`` at ``at_ms``: cancel its open orders, close its position at the
        newest mark (a ``Delivery`` execution, no fee), and mark it ``Closed``."""
        for order in self.open_orders(symbol):
            order.cancel_type = "CancelBySettle"
            self._close_order(order, "EC_Others")
        self.instruments[symbol] = replace(self.instruments[symbol], status=CLOSED)
        pos = self.account.positions.get(symbol)
        if pos is None or pos.size == 0 or symbol not in self.marks:
            return
        self._book_execution(symbol, SELL if pos.size > 0 else BUY, abs(pos.size),
                             self.marks[symbol], exec_type="Delivery", at_ms=at_ms)

    def _trigger_stop(self, symbol: str, bar: Bar) -> None:
        """Close the whole position of ``symbol`` by the venue's market order when ``bar``
        reaches its stop loss (at the stop, or at the open of a bar that gapped beyond it, with
        adverse slippage and the taker fee); nothing at all when it has no stop."""
        pos = self.account.positions.get(symbol)
        ref = None if pos is None else stop_reference(pos, bar)
        if pos is None or ref is None:
            return
        order = stop_order(pos, self.ids.next("order"), self.ids.seq(), bar.close_time_ms)
        self.orders[order.order_id] = order
        price = self.slippage.fill_price(order.side, ref, self.instruments[symbol].tick_size)
        self._fill(order, order.qty, price, is_maker=False, at_ms=bar.close_time_ms)

    def _match_resting(self, symbol: str, bar: Bar) -> None:
        for order in self.open_orders(symbol):
            price = order.price
            if price is None:       # only priced (Limit) orders rest
                continue
            crossed = bar.low <= price if order.side == BUY else bar.high >= price
            if not crossed:
                continue
            qty = order.leaves_qty
            if order.reduce_only:
                size = self.account.position(symbol).size
                if size == 0 or (size > 0) == (order.side == BUY):
                    order.cancel_type = "CancelByReduceOnly"
                    self._close_order(order, "EC_ReduceOnlySetButNotReducing")
                    continue
                if qty > abs(size):
                    qty = abs(size)
                    order.qty = order.cum_exec_qty + qty
            self._fill(order, qty, price, is_maker=True, at_ms=bar.close_time_ms)

    def settle_funding(self, symbol: str, rate: Decimal, at_ms: int | None = None) -> bool:
        """Settle ``rate`` now on the position held, at the symbol's mark, booked at ``at_ms``
        (default: the venue's time; the live feed's funding, which arrives on its own rather
        than by :meth:`step`); ``False`` when there is no position or no mark, so nothing was
        paid."""
        if symbol not in self.marks:
            return False
        return self._settle_funding(symbol, rate, at_ms)

    def _settle_funding(self, symbol: str, rate: Decimal, at_ms: int | None = None) -> bool:
        pos = self.account.positions.get(symbol)
        if pos is None or pos.size == 0:
            return False
        mark = self.marks[symbol]
        size = pos.size
        at = self.now_ms if at_ms is None else at_ms
        paid = self.account.settle_funding(symbol, rate, mark, at)
        ex = Execution(exec_id=self.ids.next("exec"), order_id="", order_link_id="",
                       symbol=symbol, side=BUY if size > 0 else SELL, exec_type="Funding",
                       exec_price=mark, exec_qty=abs(size), exec_value=abs(size) * mark,
                       exec_fee=paid, fee_rate=rate, is_maker=False, exec_time_ms=at,
                       order_type="UNKNOWN", order_price=None, order_qty=ZERO, leaves_qty=ZERO,
                       closed_size=ZERO, mark_price=mark, seq=self.ids.seq())
        self._record_execution(ex)
        self._events.append(("execution", ex))
        self._emit_position(symbol)
        self._events.append(("wallet", None))
        return True

    # ---- internals ---------------------------------------------------------------------
    def _instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise params_error(f"symbol invalid: {symbol}")
        return inst

    def _check_shape(self, req: OrderRequest) -> None:
        if req.side not in (BUY, SELL):
            raise params_error(f"side invalid: {req.side!r}")
        if req.order_type not in (MARKET, LIMIT):
            raise params_error(f"orderType invalid: {req.order_type!r}")
        if req.time_in_force not in TIME_IN_FORCE:
            raise params_error(f"timeInForce invalid: {req.time_in_force!r}")
        if req.position_idx != 0:
            raise params_error("position idx not match position mode")
        if len(req.order_link_id) > MAX_ORDER_LINK_ID_LEN:
            raise params_error("orderLinkId is too long (max 36 characters)")

    def _taker_price(self, req: OrderRequest, last: Decimal, inst: Instrument) -> Decimal:
        price = self.slippage.fill_price(req.side, last, inst.tick_size)
        # a marketable limit never fills beyond its price
        if req.order_type == LIMIT and req.price is not None:
            price = min(price, req.price) if req.side == BUY else max(price, req.price)
        return price

    def _check_margin(self, symbol: str, side: str, qty: Decimal, price: Decimal,
                      reduce_only: bool) -> None:
        opening = ZERO if reduce_only else self.account.opening_qty(symbol, side, qty)
        if opening == 0:
            return
        lev = self.account.position(symbol).leverage
        notional = opening * price
        cost = notional / lev + notional * self.fees.taker_rate
        if cost > self.available_balance():
            raise VenueError(INSUFFICIENT_BALANCE)


def _crosses(side: str, price: Decimal, last: Decimal) -> bool:
    """A limit at ``price`` is marketable against the last price."""
    return price >= last if side == BUY else price <= last


def signed_size(engine: MatchingEngine, symbol: str) -> Decimal:
    """The signed position size of ``symbol`` (0 when none)."""
    pos = engine.account.positions.get(symbol)
    return ZERO if pos is None else pos.size


def total_fees(executions: Iterable[Execution]) -> Decimal:
    return sum((e.exec_fee for e in executions if e.exec_type == "Trade"), ZERO)


__all__ = ["MatchingEngine", "side_sign", "signed_size", "total_fees"]
