"""Intra-bar valuations of the book: cash plus each position at its newest intra-bar mark; the
marks never change a snapshot; stale marks are ignored; they survive the saved state."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from tm_portfolio.domain.book import Book
from tm_portfolio.testing import H4_MS, close_ns, open_ms

D = Decimal
SYMS = ("A", "B")


def run(with_marks: bool) -> tuple[Book, list, list]:
    """Three bars, a long A and a short B from bar 0's close; marks inside bars 1 and 2."""
    b = Book.new(SYMS, D(1000))
    snaps, vals = [], []
    for i, (pa, pb) in enumerate([(10, 20), (11, 19), (9, 22)]):
        if with_marks and i:
            for k, (ma, mb) in enumerate([(8, 25), (12, 18)]):
                at = open_ms(i) + (k + 1) * 60_000             # inside bar i, before its close
                vals += [v for v in (b.on_mark("A", D(ma), at), b.on_mark("B", D(mb), at + 1)) if v]
        snaps += [s.body for s in b.on_bar("A", open_ms(i), D(pa), close_ns(i))]
        snaps += [s.body for s in b.on_bar("B", open_ms(i), D(pb), close_ns(i))]
        if i == 0:
            b.on_fill("A", "Buy", D(2), D(10), D("0.01"), close_ns(0))
            b.on_fill("B", "Sell", D(1), D(20), D("0.02"), close_ns(0))
    return b, snaps, vals


def test_marks_never_change_a_snapshot_or_the_equity_curve():
    plain, snaps, _ = run(False)
    marked, snaps_m, vals = run(True)
    assert snaps_m == snaps and len(snaps) == 3
    assert marked.perf.to_dict() == plain.perf.to_dict()
    assert marked.ledger.to_dict() == plain.ledger.to_dict()
    assert len(vals) == 8


def test_a_valuation_is_cash_plus_each_position_at_its_newest_mark():
    b, snaps, vals = run(True)
    cash = D(1000) - D("0.03")
    # inside bar 1: A marked 8 (B still at its bar-0 close 20), then B marked 25
    v1, v2 = vals[0], vals[1]
    assert v1.equity == cash + 2 * (8 - 10) and v1.mark_instrument == "A"
    assert v2.equity == cash + 2 * (8 - 10) - (25 - 20)
    assert v2.unrealised_pnl == D(-9) and v2.after_bar_ms == open_ms(0)
    assert v2.peak_equity == snaps[0].peak_equity == D(1000)
    assert v2.drawdown == pytest.approx(float((D(1000) - v2.equity) / D(1000)))
    assert {p.instrument: p.mark_price for p in v2.positions} == {"A": D(8), "B": D(25)}
    assert v2.at_ms == open_ms(1) + 60_001
    # inside bar 2 the bar-1 closes (11, 19) are the base, then the marks replace them
    v5 = vals[4]
    assert v5.equity == cash + 2 * (8 - 10) + (20 - 19) and v5.after_bar_ms == open_ms(1)


def test_stale_marks_and_a_flat_book_give_no_valuation():
    b = Book.new(SYMS, D(1000))
    b.on_bar("A", open_ms(0), D(10), close_ns(0))
    b.on_bar("B", open_ms(0), D(20), close_ns(0))
    assert b.on_mark("A", D(9), open_ms(1) + 1000) is None          # flat: nothing to value
    b.on_fill("A", "Buy", D(1), D(10), D(0), close_ns(0))
    assert b.on_mark("A", D(9), open_ms(0) + H4_MS) is None         # at the bar's close: stale
    assert b.on_mark("A", D(9), open_ms(1) + 1000) is None          # not after its last mark
    assert b.on_mark("C", D(9), open_ms(1) + 5000) is None          # not an instrument of ours
    assert b.stale_marks == 2                     # the two stale ones; an unknown one is no mark
    v = b.on_mark("A", D(9), open_ms(1) + 2000)
    assert v is not None and v.equity == D(999)
    with pytest.raises(ValueError, match="finite and > 0"):
        b.on_mark("A", D(0), open_ms(1) + 3000)
    # the bar that closes after the mark supersedes it: the valuation uses the close again
    b.on_bar("A", open_ms(1), D(12), close_ns(1))
    assert "A" not in b.intrabar
    assert b.valuation(open_ms(2) + 1).equity == D(1002)


def test_the_marks_are_in_the_saved_state():
    b, _, _ = run(True)
    b.on_mark("A", D(7), open_ms(3) + 60_000)
    again = Book.from_dict(json.loads(json.dumps(b.to_dict())))
    assert again.intrabar == b.intrabar == {"A": (D(7), open_ms(3) + 60_000)}
    assert again.valuations == b.valuations and again.stale_marks == b.stale_marks
    assert again.valuation(open_ms(3) + 70_000) == b.valuation(open_ms(3) + 70_000)
    assert again.on_mark("A", D(6), open_ms(3) + 60_000) is None    # the restored mark is newer
