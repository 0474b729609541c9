"""The snapshot protocol: one snapshot per bar time, what it contains, incomplete and late bars,
deferral of early effects, and the snapshot equity against the venue's wallet."""

import json
import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from tm_app.testing.random_venue import RandomVenue, execution_event
from tm_portfolio.domain.book import Book
from tm_portfolio.testing import close_ns, open_ms

D = Decimal
SYMS = ("A", "B")


def new_book(symbols=SYMS) -> Book:
    return Book.new(symbols, D(1000))


def bars(book, i, prices):
    out = []
    for s, p in prices.items():
        out += book.on_bar(s, open_ms(i), D(p), close_ns(i))
    return out


def test_snapshot_when_every_instrument_is_marked_and_fills_of_t_show_in_t_plus_1():
    b = new_book()
    assert b.on_bar("A", open_ms(0), D(10), close_ns(0)) == []
    [snap] = b.on_bar("B", open_ms(0), D(20), close_ns(0))
    assert snap.complete and snap.body.bar_time_ms == open_ms(0) and snap.close_ns == close_ns(0)
    assert snap.body.equity == D(1000) and snap.body.positions == ()
    # the decision of bar 0 fills at bar 0's close: booked now, shown in snapshot 1
    assert b.on_fill("A", "Buy", D(2), D(10), D("0.01"), close_ns(0)) is False
    [s1] = bars(b, 1, {"A": 12, "B": 20})
    body = s1.body
    assert body.bar_time_ms == open_ms(1)
    assert body.unrealised_pnl == D(4) and body.fees == D("0.01")
    assert body.equity == D(1000) + D(4) - D("0.01") and body.cash == D("999.99")
    [pv] = body.positions
    assert (pv.instrument, pv.qty, pv.avg_price, pv.mark_price, pv.unrealised_pnl) == \
        ("A", D(2), D(10), D(12), D(4))
    assert body.peak_equity == body.equity and body.drawdown == 0.0
    [s2] = bars(b, 2, {"A": 9, "B": 20})
    assert s2.body.equity == D(1000) - D(2) - D("0.01")
    assert s2.body.peak_equity == D("1003.99")
    assert s2.body.drawdown == float((D("1003.99") - s2.body.equity) / D("1003.99"))


def test_missing_bar_gives_an_incomplete_snapshot_before_the_next_time_is_marked():
    b = new_book()
    bars(b, 0, {"A": 10, "B": 20})
    b.on_fill("A", "Buy", D(1), D(10), D(0), close_ns(0))
    assert b.on_bar("A", open_ms(1), D(11), close_ns(1)) == []       # B's bar 1 never comes
    [s1, ] = b.on_bar("A", open_ms(2), D(15), close_ns(2))
    assert not s1.complete and s1.body.bar_time_ms == open_ms(1)
    assert s1.body.unrealised_pnl == D(1)                               # marked at 11, not 15
    assert b.incomplete == 1 and b.pending_ms == open_ms(2)
    [s2] = b.on_bar("B", open_ms(2), D(20), close_ns(2))
    assert s2.complete and s2.body.unrealised_pnl == D(5)


def test_late_and_duplicate_bars_emit_nothing():
    b = new_book()
    bars(b, 0, {"A": 10, "B": 20})
    bars(b, 1, {"A": 11, "B": 21})
    assert b.on_bar("A", open_ms(1), D(11), close_ns(1)) == []          # duplicate
    assert b.on_bar("A", open_ms(0), D(99), close_ns(0)) == []          # older than the mark
    assert b.ledger.marks["A"] == D(11) and b.late_bars == 2
    assert b.last_snapshot_ms == open_ms(1)


def test_early_fill_is_deferred_to_after_its_snapshot():
    b = new_book()
    bars(b, 0, {"A": 10, "B": 20})
    # bar 1's decision filled before the portfolio saw bar 1 (a restart with a backlog)
    assert b.on_fill("A", "Buy", D(1), D(10), D(0), close_ns(1)) is True
    assert b.on_funding("A", D("0.5"), close_ns(1)) is True
    [s1] = bars(b, 1, {"A": 12, "B": 20})
    assert s1.body.positions == () and s1.body.funding == 0
    assert b.deferred == [] and b.ledger.positions["A"].size == 1       # booked right after
    [s2] = bars(b, 2, {"A": 13, "B": 20})
    assert s2.body.unrealised_pnl == D(3) and s2.body.funding == D("0.5")


def test_far_future_stamp_is_booked_at_once():
    b = new_book()
    bars(b, 0, {"A": 10, "B": 20})
    assert b.on_fill("A", "Buy", D(1), D(10), D(0), close_ns(500)) is False
    assert b.ledger.positions["A"].size == 1


def test_deferred_effect_is_booked_when_a_later_bar_time_starts():
    b = new_book()
    bars(b, 0, {"A": 10, "B": 20})
    b.on_fill("A", "Buy", D(1), D(10), D(0), close_ns(1))               # deferred
    assert b.on_bar("A", open_ms(2), D(11), close_ns(2)) == []         # no bar 1 at all
    assert b.ledger.positions["A"].size == 1                            # booked: bar 2 opened


def lockstep_events(seed: int, n: int = 12):
    """(bar time index, kind, payload) in the mesh's order: bars of t, then t's effects."""
    venue = RandomVenue(seed=seed, symbols=("BTCUSDT", "ETHUSDT"), resting=False)
    out, expect = [], []
    for i in range(n):
        vb, funding = venue.step(i)
        assert all(e.exec_type == "Funding" for e in funding)
        paid = sum((e.exec_fee for e in funding), D(0))
        expect.append(venue.wallet()["equity"] + paid)
        out.append([("bar", s, b.close) for s, b in sorted(vb.items())])
        effects = [("eff", execution_event(e)) for e in funding + venue.trade(3)]
        out[-1] = (out[-1], effects)
    return out, expect


def run(book, steps, reorder_rng=None):
    snaps = []
    for i, (bar_evs, effects) in enumerate(steps):
        seq = [("bar", x) for x in bar_evs]
        if reorder_rng is not None:
            # a backlog: the first of t's effects (exec.report keeps its order) are handled
            # before some (or all) of t's bars
            k = reorder_rng.randint(0, len(seq))
            j = reorder_rng.randint(0, len(effects))
            seq = seq[:k] + list(effects[:j]) + seq[k:] + list(effects[j:])
        else:
            seq = seq + list(effects)
        for kind, *rest in seq:
            if kind == "bar":
                _, s, close = rest[0]
                snaps += book.on_bar(s, open_ms(i), close, close_ns(i))
            else:
                ev = rest[0]
                if hasattr(ev, "payment"):
                    book.on_funding(ev.instrument, ev.payment, ev.settle_time_ms * 1_000_000)
                else:
                    book.on_fill(ev.instrument, ev.side, ev.qty, ev.price, ev.fee, close_ns(i))
        book = Book.from_dict(json.loads(json.dumps(book.to_dict())))   # restart every bar
    return [s.body for s in snaps], book


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_snapshot_equity_is_the_venue_equity_at_the_bar_close_and_order_independent(seed):
    steps, expect = lockstep_events(seed)
    snaps, book = run(Book.new(("BTCUSDT", "ETHUSDT"), D(100_000)), steps)
    assert [s.bar_time_ms for s in snaps] == [open_ms(i) for i in range(len(steps))]
    # snapshot t = the venue right after bar t closed, before funding settled at that close
    assert [s.equity for s in snaps] == expect
    shuffled, book2 = run(Book.new(("BTCUSDT", "ETHUSDT"), D(100_000)), steps,
                          random.Random(seed))
    assert shuffled == snaps
    assert book2.ledger == book.ledger


def test_before_any_bar_effects_wait_for_the_first_bar():
    b = new_book()
    assert b.on_fill("B", "Buy", D(1), D(20), D(0), close_ns(900)) is True    # a wall-clock stamp
    assert b.on_fill("A", "Buy", D(1), D(10), D(0), close_ns(0)) is True      # bar 0's decision
    assert b.on_bar("A", open_ms(0), D(10), close_ns(0)) == []
    assert "B" in b.ledger.positions and "A" not in b.ledger.positions      # far one booked
    [s0] = b.on_bar("B", open_ms(0), D(20), close_ns(0))
    assert [p.instrument for p in s0.body.positions] == ["B"]
    assert b.ledger.positions["A"].size == 1 and b.deferred == []
