"""External cash flows (deposits, withdrawals, an opening balance the executor adopted from the
venue) in risk's baselines: a flow is neither a loss nor a gain.

The portfolio's snapshots and valuations carry ``transfers``, the cumulative flows it booked.
When risk first sees a new total (on a snapshot or a valuation it applies), the difference is
one flow made at the newest snapshot equity: the breaker's peak and last equity and the loss
limits' day-start and inception baselines are rebased by :func:`tm_quant.flows.rebase` (the
rule the portfolio's own peak follows), and the snapshot equity risk sizes with moves by the
flow. So a withdrawal of half the account trips nothing, a deposit does not hide a loss, and
orders are sized on the money that is there.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tm_quant.flows import rebase

from tm_risk.domain.state import RiskState


def on_transfers(s: RiskState, total: Decimal) -> Decimal:
    """Rebase ``s`` for the portfolio's cumulative flows ``total``; returns the flow applied
    (0 when the total is the one already applied)."""
    amount = total - s.transfers
    if amount == 0:
        return amount
    s.transfers = total
    before = s.equity
    if before is None:          # no snapshot yet: the first one sets every baseline
        return amount

    def rb(v: Decimal | None) -> Decimal | None:
        return None if v is None else rebase(v, before, amount)

    b, lb = s.breaker, s.losses
    s.breaker = replace(b, peak_equity=rb(b.peak_equity), last_equity=rb(b.last_equity))
    s.losses = replace(lb, day_start_equity=rb(lb.day_start_equity),
                       baseline_equity=rb(lb.baseline_equity))
    s.equity = rebase(before, before, amount)
    return amount
