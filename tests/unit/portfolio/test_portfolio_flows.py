"""External flows (BalanceReconciled) in the book: cash, not PnL; not a return; not a
drawdown; kept across a restart."""

from decimal import Decimal

from tm_portfolio.domain.book import Book
from tm_portfolio.domain.performance import PerformanceTracker
from tm_portfolio.testing import close_ns, open_ms

D = Decimal


def snap(book: Book, i: int, price) -> object:
    [taken] = book.on_bar("A", open_ms(i), D(price), close_ns(i))
    return taken.body


def test_a_withdrawal_moves_cash_and_equity_not_pnl_nor_the_drawdown():
    b = Book.new(("A",), D(1000))
    snap(b, 0, 10)
    b.on_fill("A", "Buy", D(50), D(10), D(0), close_ns(0))
    s1 = snap(b, 1, 11)                        # +50
    s2 = snap(b, 2, 10)                        # back to 1000: drawdown 50 / 1050
    assert s1.peak_equity == D(1050) and s2.equity == D(1000)
    b.on_balance(D(-400), "withdrawal", 0)
    s3 = snap(b, 3, 10)
    assert s3.transfers == D(-400) and s3.cash == s2.cash - 400 and s3.equity == D(600)
    assert s3.realised_pnl == s2.realised_pnl and s3.unrealised_pnl == s2.unrealised_pnl
    assert s3.drawdown == s2.drawdown            # per unit: the flow is not a loss
    assert s3.peak_equity == D(1050) * D(600) / D(1000)
    st = b.statistics()
    # returns: +5 %, -4.76 %, 0 % (the withdrawal bar)
    assert st["returns"] == 4 and st["max_drawdown"] == s2.drawdown
    restored = Book.from_dict(b.to_dict())
    assert restored.ledger.transfers == D(-400)
    assert restored.view(open_ms(3)).equity == s3.equity
    assert restored.perf.to_dict() == b.perf.to_dict()


def test_a_deposit_is_not_a_return_and_the_growth_is_time_weighted():
    p = PerformanceTracker(initial=D(1000))
    p.add(D(1100))                                # +10 %
    p.flow(D(1100))                               # doubled by a deposit
    p.add(D(2420))                                # +10 % on 2200
    assert p.n == 2 and abs(p.mean - 0.10) < 1e-12 and p.positive == 2
    assert p.peak_equity == D(2420) and p.max_drawdown == 0.0
    assert p.initial == D(2000)                   # E_0 in units: 2420 / 2000 = 1.1 x 1.1
    tracker_without = PerformanceTracker(initial=D(1000))
    tracker_without.add(D(1100))
    tracker_without.add(D(1210))
    assert p.cagr() == tracker_without.cagr()


def test_a_flow_before_the_first_snapshot_moves_the_start():
    b = Book.new(("A",), D(100_000))
    b.on_balance(D(-50_000), "the account holds 50k", 0)
    s0 = snap(b, 0, 10)
    assert s0.equity == D(50_000) and s0.peak_equity == D(50_000) and s0.drawdown == 0.0
    assert b.perf.n == 1 and b.perf.mean == 0.0
