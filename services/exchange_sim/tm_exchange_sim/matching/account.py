"""A UNIFIED account with a USDT wallet and one-way positions: fills, funding and margin.

Wallet balance moves only by realised PnL, fees, funding and transfers (deposits and
withdrawals, :meth:`Account.transfer`), all exact Decimal (a partial close takes its share of the
cost basis rounded to 1e-10, and the last close takes the remainder:
:func:`tm_quant.pnl.close_part`, which the portfolio books with too). Equity adds
unrealised PnL at the mark; available balance is equity minus the initial margin of positions
and of open orders (Bybit's ``totalAvailableBalance``). A position's stop loss is cleared by the
fill that closes the position or flips it to the other side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, DecimalException, Inexact, localcontext

# COST_QUANTUM: the cost basis a partial close removes is rounded to it, so that every booked
# amount is a finite decimal: the wallet then equals deposits + cash flows - fees - funding.
from tm_quant.pnl import COST_QUANTUM, close_part  # noqa: F401 - COST_QUANTUM re-exported

from tm_exchange_sim.matching.models import ZERO, Order, Position, side_sign


@dataclass(frozen=True, slots=True)
class FillResult:
    closed_size: Decimal     # how much of an existing position this fill closed
    realised_pnl: Decimal    # price PnL of the closed part (fees excluded)
    closed_entry_value: Decimal = ZERO   # cost basis the closed part took away
    open_fee: Decimal = ZERO             # the closed part's share of its opening fees
    close_fee: Decimal = ZERO            # the share of this fill's fee that closed
    funding: Decimal = ZERO              # the closed part's share of the funding paid on it


def _share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """``total x part / whole`` on the cost grid; all of it when ``part`` is the whole."""
    return total if part == whole else (total * part / whole).quantize(COST_QUANTUM)


def clear_stop(pos: Position) -> None:
    """The position has no stop loss any more (closed, flipped, or cancelled by "0")."""
    pos.stop_loss = ZERO
    pos.sl_trigger_by = ""


def transfer_amount(value: Decimal | int | float | str) -> Decimal:
    """``value`` as a transfer amount: a finite, non-zero decimal (> 0 deposits, < 0 withdraws).

    Raises:
        ValueError: not a number (a bool neither), not finite, or 0. The message does not quote
            the caller's text.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise ValueError(f"transfer amount must be a decimal number, not {type(value).__name__}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (DecimalException, ValueError):
        raise ValueError("transfer amount is not a decimal number") from None
    if not amount.is_finite():
        raise ValueError("transfer amount must be finite (not NaN or Infinity)")
    if amount == 0:
        raise ValueError("transfer amount must not be 0 (> 0 deposits, < 0 withdraws)")
    return amount


def _shown(amount: Decimal) -> str:
    """``amount`` for a message, cut short (the caller may send a megabyte of digits)."""
    text = str(amount)
    return text if len(text) <= 32 else f"{text[:29]}..."


class Account:
    def __init__(self, initial_balance: Decimal, default_leverage: Decimal) -> None:
        self.coin = "USDT"
        self.deposits = Decimal(initial_balance)
        self.wallet_balance = Decimal(initial_balance)
        self.default_leverage = Decimal(default_leverage)
        self.positions: dict[str, Position] = {}
        self.cum_fees = ZERO
        self.cum_funding = ZERO

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol=symbol, leverage=self.default_leverage)
        return pos

    # ---- transfers ---------------------------------------------------------------------
    def transfer(self, amount: Decimal | int | float | str, *, available: Decimal) -> Decimal:
        """Move USDT into (``amount`` > 0, a deposit) or out of (< 0, a withdrawal) the wallet:
        ``wallet_balance`` and ``deposits`` both move by it, so realised PnL (wallet - deposits)
        does not. ``available``: the available balance now, the most a withdrawal may take.
        Returns the amount booked.

        Raises:
            ValueError: not a finite non-zero number (:func:`transfer_amount`), a withdrawal
                above ``available``, or a wallet that would not be exact in the arithmetic's
                precision; nothing changed.
        """
        value = transfer_amount(amount)
        if value < 0 and value.copy_abs() > available:     # copy_abs: no rounding, no overflow
            raise ValueError(f"withdrawal of {_shown(value.copy_abs())} USDT refused: more than "
                             f"the available balance, {format(available.normalize(), 'f')} USDT")
        with localcontext() as ctx:
            ctx.traps[Inexact] = True
            try:
                wallet, deposits = self.wallet_balance + value, self.deposits + value
            except DecimalException:
                raise ValueError(f"transfer of {_shown(value)} USDT refused: the wallet would "
                                 f"not be exact in {ctx.prec} significant digits") from None
        self.wallet_balance, self.deposits = wallet, deposits
        return value

    # ---- fills and funding -------------------------------------------------------------
    def apply_fill(self, symbol: str, side: str, qty: Decimal, price: Decimal, fee: Decimal,
                   now_ms: int) -> FillResult:
        """Book a trade of ``qty`` (> 0) at ``price``; ``fee`` is charged to the wallet."""
        pos = self.position(symbol)
        signed = side_sign(side) * qty
        size_before, entry_before = abs(pos.size), pos.entry_value
        closed, realised, pos.size, pos.entry_value = close_part(pos.size, pos.entry_value,
                                                                 signed, price)
        closed_entry = entry_before - pos.entry_value      # the cost basis the close removed
        open_fee = funding = ZERO
        close_fee = _share(fee, closed, qty) if closed else ZERO
        if closed:
            open_fee = _share(pos.open_fee, closed, size_before)
            funding = _share(pos.held_funding, closed, size_before)
            pos.open_fee -= open_fee
            pos.held_funding -= funding
        opened = qty - closed
        if opened > 0:
            if pos.size == 0:
                pos.realised_pnl = ZERO
                pos.created_ms = now_ms
            pos.size += side_sign(side) * opened
            pos.entry_value += opened * price
            pos.open_fee += fee - close_fee
        if pos.size == 0:
            pos.entry_value = pos.open_fee = pos.held_funding = ZERO
        if pos.stop_loss and (pos.size == 0 or (closed and opened > 0)):
            clear_stop(pos)       # closed, or flipped (closed all, then opened the other side)
        self.wallet_balance += realised - fee
        self.cum_fees += fee
        pos.realised_pnl += realised - fee
        pos.cum_realised_pnl += realised - fee
        pos.updated_ms = now_ms
        return FillResult(closed_size=closed, realised_pnl=realised,
                          closed_entry_value=closed_entry,
                          open_fee=open_fee, close_fee=close_fee, funding=funding)

    def settle_funding(self, symbol: str, rate: Decimal, mark: Decimal, now_ms: int) -> Decimal:
        """Pay (or receive) funding on the open position: payment = size x mark x rate, so a
        long pays when the rate is positive. Returns the amount paid (negative = received)."""
        pos = self.positions.get(symbol)
        if pos is None or pos.size == 0:
            return ZERO
        payment = pos.size * mark * rate
        self.wallet_balance -= payment
        self.cum_funding += payment
        pos.held_funding += payment
        pos.realised_pnl -= payment
        pos.cum_realised_pnl -= payment
        pos.updated_ms = now_ms
        return payment

    # ---- margin ------------------------------------------------------------------------
    def unrealised_pnl(self, marks: Mapping[str, Decimal]) -> Decimal:
        return sum((p.unrealised_pnl(marks[s]) for s, p in self.positions.items()
                    if p.size != 0 and s in marks), ZERO)

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        return self.wallet_balance + self.unrealised_pnl(marks)

    def position_im(self, marks: Mapping[str, Decimal]) -> Decimal:
        return sum((p.initial_margin(marks[s]) for s, p in self.positions.items()
                    if p.size != 0 and s in marks), ZERO)

    def order_im(self, open_orders: Iterable[Order], taker_rate: Decimal) -> Decimal:
        total = ZERO
        for o in open_orders:
            if o.reduce_only or o.price is None:
                continue
            lev = self.position(o.symbol).leverage
            notional = o.leaves_qty * o.price
            total += notional / lev + notional * taker_rate
        return total

    def available(self, marks: Mapping[str, Decimal], open_orders: Iterable[Order],
                  taker_rate: Decimal) -> Decimal:
        return self.equity(marks) - self.position_im(marks) - self.order_im(open_orders,
                                                                              taker_rate)

    def opening_qty(self, symbol: str, side: str, qty: Decimal) -> Decimal:
        """The part of an order of ``qty`` that would open or increase exposure."""
        size = self.position(symbol).size
        if size == 0 or (size > 0) == (side_sign(side) > 0):
            return qty
        return max(qty - abs(size), ZERO)
