"""Exchange positions against the portfolio's view: which instruments differ, and by how much.

The exchange is the truth; a difference becomes a ``PositionReconciled`` event. Quantities are
signed (long > 0, short < 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tm_executor.domain.orders import ZERO, dec, text


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    symbol: str
    qty: Decimal          # signed
    avg_price: Decimal
    stop_loss: Decimal = ZERO     # the position's stop loss on the venue (0 = none)

    @classmethod
    def from_bybit(cls, d: Mapping[str, Any]) -> ExchangePosition:
        size = dec(d, "size", ZERO)
        side = str(d.get("side") or "")
        qty = -size if side == "Sell" else (size if side == "Buy" else ZERO)
        return cls(symbol=text(d, "symbol"), qty=qty, avg_price=dec(d, "avgPrice", ZERO),
                   stop_loss=dec(d, "stopLoss", ZERO))


@dataclass(frozen=True, slots=True)
class PositionDiff:
    symbol: str
    exchange_qty: Decimal
    portfolio_qty: Decimal
    avg_price: Decimal

    @property
    def reason(self) -> str:
        if self.portfolio_qty == 0:
            return "position on the exchange unknown to the portfolio"
        if self.exchange_qty == 0:
            return "position in the portfolio absent on the exchange"
        return "position size differs from the portfolio"


def position_diffs(exchange: Iterable[ExchangePosition], portfolio: Mapping[str, Decimal],
                   symbols: Iterable[str] | None = None) -> list[PositionDiff]:
    """Instruments whose exchange size differs from the portfolio's, sorted by symbol.
    ``symbols`` limits the comparison (None = every instrument either side knows)."""
    ex = {p.symbol: p for p in exchange if p.qty != 0}
    names = set(ex) | {s for s, q in portfolio.items() if q != 0}
    if symbols is not None:
        names &= set(symbols)
    out = []
    for s in sorted(names):
        e = ex.get(s)
        eq = e.qty if e else ZERO
        pq = portfolio.get(s, ZERO)
        if eq != pq:
            out.append(PositionDiff(s, eq, pq, e.avg_price if e else ZERO))
    return out
