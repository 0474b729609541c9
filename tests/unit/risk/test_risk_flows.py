"""External flows in risk's baselines (tm_risk.domain.flows): a withdrawal does not trip the
breaker, a deposit does not hide a loss, and a total already applied moves nothing."""

from decimal import Decimal

from tm_risk.domain import breaker as brk
from tm_risk.domain import loss_limits as ll
from tm_risk.domain.breaker import State
from tm_risk.domain.flows import on_transfers
from tm_risk.domain.params import H4_MS, BreakerParams
from tm_risk.domain.state import RiskState

D = Decimal
P = BreakerParams()


def snapshot(s: RiskState, equity, i: int, transfers: Decimal | int = 0) -> list:
    on_transfers(s, D(transfers))
    s.equity = D(str(equity))
    s.losses = ll.on_equity(s.losses, s.equity, i * H4_MS)
    s.breaker, ts = brk.on_snapshot(s.breaker, s.equity, i * H4_MS, i * H4_MS, P)
    return ts


def test_a_withdrawal_of_most_of_the_account_trips_nothing():
    s = RiskState()
    snapshot(s, 100_000, 1)
    snapshot(s, 98_000, 2)                               # 2 % down
    # 60k withdrawn at 98k (38k left), then the book loses 500 more
    assert snapshot(s, 37_500, 3, transfers=-60_000) == []
    assert s.breaker.state == State.CLOSED
    peak = D(100_000) * D(38_000) / D(98_000)
    assert s.breaker.peak_equity == peak
    assert brk.drawdown(D(37_500), s.breaker.peak_equity) == float(1 - D(37_500) / peak)
    assert s.losses.baseline_equity == peak              # the cumulative loss is per unit too
    assert ll.loss(D(38_000), s.losses.baseline_equity) == ll.loss(D(98_000), D(100_000))


def test_without_the_rebase_the_same_withdrawal_is_a_drawdown():
    s = RiskState()
    snapshot(s, 100_000, 1)
    ts = snapshot(s, 40_000, 2)                           # the same money, not a flow
    assert [t.to_state for t in ts] == [State.OPEN]


def test_a_deposit_does_not_hide_a_loss():
    s = RiskState()
    snapshot(s, 100_000, 1)
    snapshot(s, 97_000, 2)
    # 100k deposited, then the book loses 3 % more of its 197k: 6 % from the peak per unit
    ts = snapshot(s, D(197_000) * D("0.97"), 3, transfers=D(100_000))
    assert [t.trigger for t in ts] == [brk.Trigger.DRAWDOWN]


def test_a_total_already_applied_moves_nothing_and_survives_a_restart():
    s = RiskState()
    snapshot(s, 100_000, 1)
    assert on_transfers(s, D(-10_000)) == D(-10_000)
    peak = s.breaker.peak_equity
    restored = RiskState.from_json(s.to_json())
    assert restored.transfers == D(-10_000)
    assert on_transfers(restored, D(-10_000)) == 0 and restored.breaker.peak_equity == peak
    assert s.equity == D(90_000)                          # sizes on the money left
