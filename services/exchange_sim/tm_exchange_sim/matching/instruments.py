"""The simulator's instruments: :class:`tm_common.instruments.InstrumentSpec` plus the checks
that answer an order violating a filter with Bybit's error 10001 (``params_error``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from tm_common.instruments import DEFAULT_INSTRUMENTS as DEFAULT_SPECS
from tm_common.instruments import InstrumentSpec

from tm_exchange_sim.matching.errors import MIN_NOTIONAL_UNMET, RetCodeError, params_error


@dataclass(frozen=True, slots=True)
class Instrument(InstrumentSpec):
    """An instrument spec the matching engine enforces."""

    @classmethod
    def of(cls, spec: InstrumentSpec) -> Instrument:
        return cls(**{f.name: getattr(spec, f.name) for f in fields(InstrumentSpec)})

    def check_qty(self, qty: Decimal, *, market: bool) -> None:
        """Raise Bybit's 10001 when ``qty`` violates the lot filters."""
        if qty <= 0:
            raise params_error("Qty invalid: must be greater than 0")
        if qty % self.qty_step != 0:
            raise params_error(f"Qty invalid: {qty} is not a multiple of qtyStep "
                               f"{self.qty_step} for {self.symbol}")
        if qty < self.min_order_qty:
            raise params_error("The number of contracts exceeds minimum limit allowed: "
                               f"order_qty {qty} < min_qty {self.min_order_qty}")
        limit = self.max_mkt_order_qty if market else self.max_order_qty
        if qty > limit:
            raise params_error("The number of contracts exceeds maximum limit allowed: "
                               f"too large, order_qty {qty} > max_qty {limit}")

    def check_notional(self, qty: Decimal, price: Decimal) -> None:
        """Raise Bybit's 110094 when ``qty x price`` (USDT; the order's price, or the last price
        for a market order) is below ``min_notional``. Closing orders are exempt (the caller
        does not ask)."""
        if qty * price < self.min_notional:
            raise RetCodeError(MIN_NOTIONAL_UNMET, f"Order notional value below the lower "
                               f"limit: {qty * price} < minNotionalValue {self.min_notional} "
                               f"USDT for {self.symbol}")

    def check_price(self, price: Decimal) -> None:
        """Raise Bybit's 10001 when ``price`` is off the tick grid or out of range."""
        low = self.min_price if self.min_price is not None else self.tick_size
        if price < low or price > self.max_price:
            raise params_error(f"Price invalid: {price} outside [{low}, {self.max_price}]")
        if price % self.tick_size != 0:
            raise params_error(f"Price invalid: {price} is not a multiple of tickSize "
                               f"{self.tick_size} for {self.symbol}")

    def check_leverage(self, leverage: Decimal) -> None:
        if not self.min_leverage <= leverage <= self.max_leverage or \
                leverage % self.leverage_step != 0:
            raise params_error(f"leverage invalid: {leverage} not in "
                               f"[{self.min_leverage}, {self.max_leverage}]")


DEFAULT_INSTRUMENTS: dict[str, Instrument] = {s: Instrument.of(spec)
                                               for s, spec in DEFAULT_SPECS.items()}
