"""Fees and slippage: Decimal in, Decimal out, no rounding of fees (fee = qty x price x rate)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from tm_exchange_sim.matching.models import BUY

BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Bybit's default non-VIP derivatives rates: taker 0.055 %, maker 0.02 %."""

    taker_rate: Decimal = Decimal("0.00055")
    maker_rate: Decimal = Decimal("0.0002")

    def rate(self, is_maker: bool) -> Decimal:
        return self.maker_rate if is_maker else self.taker_rate

    def fee(self, qty: Decimal, price: Decimal, is_maker: bool) -> Decimal:
        return abs(qty) * price * self.rate(is_maker)


def round_to_tick(price: Decimal, tick: Decimal, side: str) -> Decimal:
    """Round adversely onto the tick grid: a buy pays the tick above, a sell gets the one below."""
    steps = (price / tick).to_integral_value(ROUND_CEILING if side == BUY else ROUND_FLOOR)
    return (steps * tick).quantize(tick)


@dataclass(frozen=True, slots=True)
class SlippageModel:
    """Fixed adverse slippage in basis points of the reference (last) price, then onto the
    tick grid (adversely). With 0 bps and a reference on the grid, the fill is the reference."""

    bps: Decimal = Decimal(0)

    def fill_price(self, side: str, reference: Decimal, tick: Decimal) -> Decimal:
        factor = 1 + self.bps / BPS if side == BUY else 1 - self.bps / BPS
        return round_to_tick(reference * factor, tick, side)
