"""Per-instrument PnL that adds up to the equity of record, exactly (``Decimal``, USDT).

The portfolio books ``equity = initial + realised - fees - funding + unrealised`` (see
``tm_portfolio.domain.ledger``). Realised plus unrealised PnL of an instrument is, exactly, its
trading cash flow plus its position at the mark: ``Σ -signed_qty × fill_price + qty × mark`` (the
cost basis an average-cost ledger removes on a close is the same amount it added on the open, so
it cancels, rounding included). So, per instrument, at each snapshot:

    pnl_i(t) = Σ_fills -signed_qty × price  - Σ fees  - Σ funding  + qty_i(t) × mark_i(t)

and ``Σ_i pnl_i(t) = equity(t) - initial`` to the last decimal, with the fills at their actual
prices: the slippage a fill paid is inside ``price_pnl`` where it occurred. ``slippage`` reports
how much that was: ``Σ signed_qty × (price - reference)``, the reference being the close of the
instrument's newest bar closed by the fill's time (the venue fills market orders at the last
close with adverse slippage, stamped at the next bar's open; > 0 = paid).

A snapshot accounts the executions stamped at or before its bar time (``exec_time_ms`` /
``settle_time_ms`` ≤ ``bar_time_ms``), the rule the trade list uses; executions after the last
snapshot are not in its equity and are left out (``unaccounted``). A position the portfolio
adopted from the exchange (a reconciliation) is not a fill: any difference it makes shows in
``residual`` (equity change minus the instruments' sum), which is otherwise exactly zero.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tm_common.events.orders import FundingSettled, OrderFilled

ZERO = Decimal(0)


@dataclass
class InstrumentPnl:
    """One instrument's totals up to the last snapshot (USDT) and its PnL at every snapshot."""

    cash_flow: Decimal = ZERO     # Σ -signed qty × fill price
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    slippage: Decimal = ZERO
    traded_notional: Decimal = ZERO
    qty: Decimal = ZERO
    mark: Decimal | None = None
    fills: int = 0
    curve: list[Decimal] = field(default_factory=list)     # pnl at each snapshot
    held: list[bool] = field(default_factory=list)         # a position over the bar before it

    @property
    def position_value(self) -> Decimal:
        return self.qty * self.mark if self.qty and self.mark is not None else ZERO

    @property
    def price_pnl(self) -> Decimal:
        """Realised + unrealised price PnL (slippage included, fees and funding not)."""
        return self.cash_flow + self.position_value

    @property
    def pnl(self) -> Decimal:
        return self.price_pnl - self.fees - self.funding


@dataclass
class Attribution:
    """The instruments' PnL and what is not theirs (both exact)."""

    instruments: dict[str, InstrumentPnl]
    equity_change: Decimal            # last snapshot equity - initial
    residual: Decimal                 # equity_change - Σ pnl (0 unless a reconciliation)
    unaccounted: int                  # executions after the last snapshot


def _stamp(ev: Any) -> int:
    return int(getattr(ev, "exec_time_ms", getattr(ev, "settle_time_ms", 0)))


def attribute(rec: Any, initial_equity: Decimal) -> Attribution:
    """Split the run's equity (``rec``: a :class:`~tm_app.record.RunRecord`) by instrument; see
    the module docstring for the definitions."""
    closes: dict[str, tuple[list[int], list[Decimal]]] = defaultdict(lambda: ([], []))
    for b in sorted(rec.bars, key=lambda b: b.close_time_ms):
        ts, cs = closes[b.instrument]
        ts.append(b.close_time_ms)
        cs.append(b.close)
    per: dict[str, InstrumentPnl] = {}
    snaps = rec.snapshots
    events = list(rec.executions)
    for ev in events:
        if isinstance(ev, OrderFilled | FundingSettled):
            per.setdefault(ev.instrument, InstrumentPnl())
    for inst in closes:
        per.setdefault(inst, InstrumentPnl())
    k = 0
    for s in snaps:
        while k < len(events) and _stamp(events[k]) <= s.bar_time_ms:
            _book(per, events[k], closes)
            k += 1
        marks = {p.instrument: p.mark_price for p in s.positions}
        for inst, a in per.items():
            a.held.append(a.qty != 0)
            if inst in marks:
                a.mark = marks[inst]
            a.curve.append(a.pnl)
    unaccounted = sum(1 for e in events[k:] if isinstance(e, OrderFilled | FundingSettled))
    # the equity change the trading made: external flows (transfers) are not PnL
    change = (snaps[-1].equity - snaps[-1].transfers - initial_equity) if snaps else ZERO
    total = sum((a.pnl for a in per.values()), ZERO)
    return Attribution(dict(sorted(per.items())), change, change - total, unaccounted)


def _book(per: dict[str, InstrumentPnl], ev: Any,
          closes: dict[str, tuple[list[int], list[Decimal]]]) -> None:
    if isinstance(ev, FundingSettled):
        per[ev.instrument].funding += ev.payment
        return
    if not isinstance(ev, OrderFilled) or ev.qty <= 0:
        return
    a = per[ev.instrument]
    signed = ev.qty if ev.side == "Buy" else -ev.qty
    a.cash_flow -= signed * ev.price
    a.fees += ev.fee
    a.qty += signed
    a.fills += 1
    a.traded_notional += ev.qty * ev.price
    ts, cs = closes.get(ev.instrument, ([], []))
    j = bisect_right(ts, ev.exec_time_ms) - 1
    if j >= 0:
        a.slippage += signed * (ev.price - cs[j])
