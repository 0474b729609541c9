"""Positions and PnL, booked exactly as the venue books them (all money in USDT, ``Decimal``).

Definitions (the venue's, as the exchange simulator books them: both use
:func:`tm_quant.pnl.close_part`):

- ``size``: signed position in base coin (long > 0, short < 0); one-way mode.
- ``entry_value``: the exact cost basis, ``|size| x`` average entry price. A fill that reduces a
  position removes the closed share of the cost basis, ``entry_value x closed / |size|`` rounded
  to :data:`tm_quant.pnl.COST_QUANTUM` (1e-10); the fill that closes the position removes the remainder, so a
  full close realises exactly ``|size| x price - entry_value``. The average entry price is
  ``entry_value / |size|`` (display only: never used in a booking).
- realised PnL: the price PnL of closed quantity, fees excluded: ``closed x price - removed``
  for a long, ``removed - closed x price`` for a short. A fill larger than the position closes it
  (realising) and opens the rest on the other side at the fill price (a flip).
- fees: ``OrderFilled.fee`` as charged (positive = paid; a maker rebate is negative).
- funding: ``FundingSettled.payment`` as settled (positive = paid by the account).
- unrealised PnL at mark ``m``: ``size x m - entry_value`` (long) or ``size x m + entry_value``
  (short); an instrument with no mark yet contributes 0 (the venue's convention).
- transfers: external flows the executor adopted from the venue's wallet
  (``BalanceReconciled.amount``, > 0 in): deposits, withdrawals, an opening balance other than
  ``initial``. They are cash, never PnL.
- ``cash = initial + transfers + realised - fees - funding`` (the venue's wallet balance) and
  ``equity = cash + unrealised``.

Round trips (for the win rate): a trip opens when a position leaves zero and closes when it is
back at zero or flips. Its net PnL is its realised PnL minus the fees of its fills and the funding
paid while it was open; the fee of a flipping fill is charged to the trip it closes. A trip ended
by a reconciliation is not counted (its outcome is unknown to the portfolio).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tm_quant.pnl import close_part

ZERO = Decimal(0)
MAX_ADJUSTMENTS = 20


def side_sign(side: str) -> int:
    """+1 for ``"Buy"``, -1 for ``"Sell"``; anything else raises ``ValueError``."""
    if side == "Buy":
        return 1
    if side == "Sell":
        return -1
    raise ValueError(f"side must be Buy or Sell, not {side!r}")


@dataclass
class Position:
    """One instrument's position and its lifetime totals (USDT)."""

    size: Decimal = ZERO
    entry_value: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    traded_notional: Decimal = ZERO
    trip_pnl: Decimal = ZERO       # net PnL of the round trip in progress

    @property
    def avg_price(self) -> Decimal:
        return ZERO if self.size == 0 else self.entry_value / abs(self.size)

    def unrealised_pnl(self, mark: Decimal | None) -> Decimal:
        if self.size == 0 or mark is None:
            return ZERO
        return self.size * mark - (self.entry_value if self.size > 0 else -self.entry_value)


@dataclass(frozen=True)
class FillBooked:
    """What one fill did: quantity closed, its realised PnL, and round trips it closed."""

    closed: Decimal
    realised_pnl: Decimal
    trip_closed: Decimal | None   # net PnL of the round trip this fill closed, if any


class _Total:
    """A read-only attribute of :class:`Ledger`: the sum of the :class:`Position` field of the
    same name over all positions."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, led: Ledger, owner: type | None = None) -> Decimal:
        return sum((getattr(p, self.name) for p in led.positions.values()), ZERO)


@dataclass
class Ledger:
    """Every position, mark and total. ``initial``: the starting equity (USDT)."""

    initial: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    mark_times_ms: dict[str, int] = field(default_factory=dict)
    trips_won: int = 0
    trips_lost: int = 0
    transfers: Decimal = ZERO
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    adjustment_count: int = 0

    def position(self, instrument: str) -> Position:
        pos = self.positions.get(instrument)
        if pos is None:
            pos = self.positions[instrument] = Position()
        return pos

    # -- events ----------------------------------------------------------------------------
    def apply_fill(self, instrument: str, side: str, qty: Decimal, price: Decimal,
                   fee: Decimal) -> FillBooked:
        """Book a trade of ``qty`` (> 0, base coin) at ``price`` (> 0) with ``fee`` (USDT)."""
        if qty <= 0 or price <= 0:
            raise ValueError(f"fill needs qty > 0 and price > 0, got qty={qty} price={price}")
        pos = self.position(instrument)
        signed = side_sign(side) * qty
        trip_closed: Decimal | None = None
        closed, realised, pos.size, pos.entry_value = close_part(pos.size, pos.entry_value,
                                                                 signed, price)
        opened = qty - closed
        pos.realised_pnl += realised
        pos.fees += fee
        pos.traded_notional += qty * price
        pos.trip_pnl += realised - fee
        if closed > 0 and pos.size == 0:
            trip_closed = pos.trip_pnl
            self._count_trip(trip_closed)
            pos.trip_pnl = ZERO
        if opened > 0:
            pos.size += side_sign(side) * opened
            pos.entry_value += opened * price
        if pos.size == 0:
            pos.entry_value = ZERO
        return FillBooked(closed, realised, trip_closed)

    def apply_funding(self, instrument: str, payment: Decimal) -> None:
        """Book a funding ``payment`` (USDT, > 0 paid by the account)."""
        pos = self.position(instrument)
        pos.funding += payment
        if pos.size != 0:
            pos.trip_pnl -= payment

    def mark(self, instrument: str, price: Decimal, time_ms: int) -> bool:
        """Mark ``instrument`` at ``price`` (a bar close at ``time_ms``). An older bar than the
        current mark is ignored (returns False)."""
        if price <= 0:
            raise ValueError(f"mark price must be > 0, got {price}")
        last = self.mark_times_ms.get(instrument)
        if last is not None and time_ms < last:
            return False
        self.marks[instrument] = price
        self.mark_times_ms[instrument] = time_ms
        return True

    def adopt(self, instrument: str, qty: Decimal, avg_price: Decimal, *, reason: str,
              at_ms: int) -> dict[str, Any]:
        """Adopt the exchange's position (``qty`` signed, ``avg_price``): the exchange is the
        truth. Realised PnL, fees and funding are untouched; the change of unrealised PnL at the
        current mark is recorded as the adjustment. Returns the adjustment record."""
        if avg_price < 0 or (qty != 0 and avg_price == 0):
            raise ValueError(f"adopted position needs avg_price > 0, got {avg_price}")
        pos = self.position(instrument)
        mark = self.marks.get(instrument)
        before_qty, before_entry, before_upnl = pos.size, pos.entry_value, pos.unrealised_pnl(mark)
        if pos.size != 0 and (qty == 0 or (qty > 0) != (pos.size > 0)):
            pos.trip_pnl = ZERO          # trip ended by reconciliation: not counted
        pos.size = qty
        pos.entry_value = abs(qty) * avg_price if qty != 0 else ZERO
        record = {"instrument": instrument, "at_ms": at_ms, "reason": reason,
                  "qty_before": before_qty, "qty_after": pos.size,
                  "entry_value_before": before_entry, "entry_value_after": pos.entry_value,
                  "unrealised_change": pos.unrealised_pnl(mark) - before_upnl}
        self.adjustment_count += 1
        self.adjustments = (self.adjustments + [record])[-MAX_ADJUSTMENTS:]
        return record

    def transfer(self, amount: Decimal, *, reason: str, at_ms: int) -> dict[str, Any]:
        """Book an external flow (``amount`` > 0 in): cash moves, PnL does not. Returns the
        adjustment record."""
        if not amount.is_finite():
            raise ValueError(f"transfer amount must be finite, got {amount}")
        self.transfers += amount
        record = {"instrument": "", "at_ms": at_ms, "reason": reason, "amount": amount}
        self.adjustment_count += 1
        self.adjustments = (self.adjustments + [record])[-MAX_ADJUSTMENTS:]
        return record

    def _count_trip(self, pnl: Decimal) -> None:
        if pnl > 0:
            self.trips_won += 1
        else:
            self.trips_lost += 1

    # -- totals ----------------------------------------------------------------------------
    # Sums over the positions of the same-named Position field (USDT).
    realised_pnl = _Total()
    fees = _Total()
    funding = _Total()
    traded_notional = _Total()

    def unrealised_pnl(self) -> Decimal:
        return sum((p.unrealised_pnl(self.marks.get(s)) for s, p in self.positions.items()),
                   ZERO)

    def cash(self) -> Decimal:
        """initial + transfers + realised − fees − funding (the venue's wallet balance)."""
        return self.initial + self.transfers + self.realised_pnl - self.fees - self.funding

    def equity(self) -> Decimal:
        """cash + unrealised PnL at the marks."""
        return self.cash() + self.unrealised_pnl()

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "initial": str(self.initial),
            "positions": {s: {k: str(v) for k, v in vars(p).items()}
                          for s, p in sorted(self.positions.items())},
            "marks": {s: [str(m), self.mark_times_ms[s]] for s, m in sorted(self.marks.items())},
            "trips_won": self.trips_won, "trips_lost": self.trips_lost,
            "transfers": str(self.transfers), "adjustment_count": self.adjustment_count,
            "adjustments": [{k: str(v) if isinstance(v, Decimal) else v for k, v in a.items()}
                            for a in self.adjustments],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ledger:
        led = cls(initial=Decimal(d["initial"]))
        led.positions = {s: Position(**{k: Decimal(v) for k, v in p.items()})
                         for s, p in d["positions"].items()}
        led.marks = {s: Decimal(m) for s, (m, _) in d["marks"].items()}
        led.mark_times_ms = {s: int(t) for s, (_, t) in d["marks"].items()}
        led.trips_won, led.trips_lost = int(d["trips_won"]), int(d["trips_lost"])
        led.transfers = Decimal(d.get("transfers", "0"))
        led.adjustment_count = int(d["adjustment_count"])
        dec_keys = ("qty_before", "qty_after", "entry_value_before", "entry_value_after",
                    "unrealised_change", "amount")
        led.adjustments = [{k: Decimal(v) if k in dec_keys else v for k, v in a.items()}
                           for a in d["adjustments"]]
        return led
