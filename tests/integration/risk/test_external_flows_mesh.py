"""Money moved outside the mesh, end to end on the real Redis: a partial mesh (portfolio, risk,
the executor, against the in-process venue) holds a long book; 40 % of the account is
withdrawn at the venue. The executor's reconciliation finds the wallet below the portfolio's
cash and adopts the difference once, as ``BalanceReconciled``; the portfolio books it as a
flow (cash and equity move, PnL does not), risk rebases its peak (a withdrawal is not a 40 %
drawdown: the breaker stays CLOSED) and sizes the next targets on the money that is left; the
portfolio's cash is the venue's wallet balance to the last decimal."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import tm_risk.commands  # noqa: F401 - registers breaker.command_issued for decoding
from tm_common.bus.streams import EXEC_REPORT, PORTFOLIO_SNAPSHOT, RISK_BREAKER
from tm_common.events import BalanceReconciled, FundingSettled, PortfolioSnapshotted

from .partial_mesh import BAR_MS, EQUITY, LONG, Mesh

START_MS = 1_688_169_600_000            # 2023-07-01 00:00 UTC (a funding time; a calm month)
WITHDRAWN = Decimal(40_000)


async def funding_after(mesh: Mesh, snap: PortfolioSnapshotted) -> Decimal:
    """The funding settled after the snapshot's bar opened: in the wallet, not in it."""
    return sum((b.payment for b in await mesh.bodies(EXEC_REPORT)
                if isinstance(b, FundingSettled) and b.settle_time_ms > snap.bar_time_ms),
               Decimal(0))


def notional_share(snap: PortfolioSnapshotted) -> Decimal:
    return sum((abs(p.qty) * p.mark_price for p in snap.positions), Decimal(0)) / snap.equity


@pytest.mark.timeout(180)
async def test_a_withdrawal_is_adopted_once_as_a_flow_not_a_loss(redis_url):
    # the executor in replay: the in-process venue's market runs on the bars, not the wall clock
    mesh = Mesh(redis_url, f"tmtest:{uuid.uuid4().hex[:8]}:flows:", start_ms=START_MS,
                executor={"mode": "replay", "balance_reconcile": True})
    try:
        await mesh.start()
        last = await mesh.open_book(13)                      # risk sizes from its 8th bar
        # one bar without targets: its snapshot holds the last bar's fills; it closes at a
        # funding time, so the executor asked for every settlement the replayed venue (up to
        # a bar ahead of the bars handled) can hold
        t = (await mesh.bars_in_lockstep(last + BAR_MS, last + BAR_MS))[-1]
        assert (t + BAR_MS) % (8 * 3_600_000) == 0
        engine = mesh.venue.state.engine
        rec, balance = mesh.executor_service.reconciler, mesh.executor_service.balance

        await rec.reconcile_once()
        assert balance.last["result"] == "ok", balance.last      # nothing moved yet
        snaps = [s for s in await mesh.bodies(PORTFOLIO_SNAPSHOT)
                 if isinstance(s, PortfolioSnapshotted)]
        before = snaps[-1]
        assert before.positions and before.transfers == 0

        mesh.venue.state.transfer(-WITHDRAWN)                    # a person takes money out
        await rec.reconcile_once()
        assert balance.last["result"] == "difference", balance.last
        await rec.reconcile_once()                                # published: not again
        await mesh.idle()
        flows = [b for b in await mesh.bodies(EXEC_REPORT) if isinstance(b, BalanceReconciled)]
        assert [f.amount for f in flows] == [-WITHDRAWN]
        # the snapshot does not hold the settlement at its bar's close, the wallet does: the
        # executor compared the wallet with the snapshot's cash less that funding
        pending = await funding_after(mesh, before)
        assert pending != 0
        assert flows[0].portfolio_cash == before.cash - pending

        # the book trades on: every bar's targets again, reconciling after each
        for bar in range(1, 7):
            await mesh.bars_in_lockstep(t + bar * BAR_MS, t + bar * BAR_MS, LONG)
            await rec.reconcile_once()
        # two bars without targets: the last one's snapshot holds every fill and settlement
        await mesh.bars_in_lockstep(t + 7 * BAR_MS, t + 8 * BAR_MS)
        await rec.reconcile_once()
        assert balance.last["result"] == "ok", balance.last
        flows = [b for b in await mesh.bodies(EXEC_REPORT) if isinstance(b, BalanceReconciled)]
        assert len(flows) == 1                                    # adopted once, never again

        snaps = [s for s in await mesh.bodies(PORTFOLIO_SNAPSHOT)
                 if isinstance(s, PortfolioSnapshotted)]
        after = snaps[-1]
        assert after.transfers == -WITHDRAWN
        assert after.cash - await funding_after(mesh, after) == engine.account.wallet_balance
        assert {p.instrument: p.qty for p in after.positions} == {
            s: p.size for s, p in engine.account.positions.items() if p.size}
        assert after.realised_pnl - before.realised_pnl < EQUITY / 100   # the flow is not PnL
        assert after.drawdown < 0.05 and after.peak_equity < before.peak_equity * Decimal("0.7")
        breaker = [b for b in await mesh.bodies(RISK_BREAKER)]
        assert not [b for b in breaker if getattr(b, "to_state", "") == "OPEN"], breaker
        # sized on the money left: the exposure is the targets' share of the equity there is
        # (sized on the cash the portfolio had before, it would be 1.2 x 100k / 61k = 2.0)
        wanted = Decimal(str(sum(LONG.values())))
        assert abs(notional_share(after) - wanted) < Decimal("0.05"), notional_share(after)
    finally:
        await mesh.close()
