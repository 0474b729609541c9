"""Intra-bar protection in the breaker's pure functions: a valuation between two bar closes
trips on the drawdown and the loss limits, and moves nothing of the bar-close accounting (peak,
last equity, held bars, the loss baselines)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tm_risk.domain import breaker as brk
from tm_risk.domain import loss_limits as ll
from tm_risk.domain.breaker import DAY_MS, Breaker, State, Trigger
from tm_risk.domain.params import H4_MS, BreakerParams

P = BreakerParams(drawdown_limit=0.05)
DAY0 = 20_000 * DAY_MS


def _closed(peak: int = 1000) -> Breaker:
    b, _ = brk.on_snapshot(Breaker(), Decimal(peak), DAY0, DAY0 + H4_MS, P)
    return b


def test_an_intra_bar_drawdown_over_the_limit_trips_with_its_reason_and_moves_nothing_else():
    b = _closed()
    same, none = brk.on_mark(b, Decimal(951), DAY0 + H4_MS + 60_000, P)
    assert none == [] and same == b                       # 4.9 %: under the limit, unchanged
    high, none = brk.on_mark(b, Decimal(1200), DAY0 + H4_MS + 120_000, P)
    assert none == [] and high.peak_equity == 1000        # an intra-bar high is not a peak
    nb, (t,) = brk.on_mark(b, Decimal(949), DAY0 + H4_MS + 180_000, P)
    assert (t.from_state, t.to_state, t.trigger) == (State.CLOSED, State.OPEN, Trigger.DRAWDOWN)
    assert t.at_ms == DAY0 + H4_MS + 180_000
    assert "intra-bar drawdown 5.10% from peak 1000 USDT exceeds 5.00%" in t.reason
    assert (nb.peak_equity, nb.last_equity, nb.last_snapshot_bar_ms) == \
        (b.peak_equity, b.last_equity, b.last_snapshot_bar_ms)
    assert nb.hold == ""                                  # an automatic trip: it cools down


def test_in_open_only_a_stronger_loss_limit_fires_and_half_open_trips_on_the_drawdown():
    b = _closed()
    opened, _ = brk.fire(b, Trigger.DRAWDOWN, "x", DAY0 + H4_MS)
    assert brk.on_mark(opened, Decimal(500), DAY0 + H4_MS + 1, P) == (opened, [])
    held, (t,) = brk.on_mark(opened, Decimal(500), DAY0 + H4_MS + 1, P,
                             (Trigger.CUMULATIVE_LOSS, "cumulative loss 50.00%"))
    assert t.trigger == Trigger.CUMULATIVE_LOSS and held.hold == "cumulative_loss"
    assert t.reason == "cumulative loss 50.00%, on an intra-bar mark"
    killed, _ = brk.fire(b, Trigger.KILL, "kill", DAY0 + H4_MS)
    assert brk.on_mark(killed, Decimal(500), DAY0 + H4_MS + 1, P,
                       (Trigger.DAILY_LOSS, "daily"))[1] == []     # weaker than the kill
    half = replace(b, state=State.HALF_OPEN, held_bars=2)
    # HALF_OPEN's "loss" rule is a bar-close rule: a 1 % intra-bar dip does not reopen ...
    assert brk.on_mark(half, Decimal(990), DAY0 + H4_MS + 1, P) == (half, [])
    # ... but the drawdown does
    nb, (t,) = brk.on_mark(half, Decimal(900), DAY0 + H4_MS + 1, P)
    assert (t.from_state, t.to_state, nb.held_bars) == (State.HALF_OPEN, State.OPEN, 0)


def test_intra_bar_loss_limits_use_the_bar_close_baselines_and_move_none():
    book = ll.on_equity(ll.LossBook(), Decimal(1000), DAY0 + H4_MS)
    before = book
    hit = ll.intrabar_breach(book, Decimal(959), DAY0 + H4_MS + 60_000, 0.04, 0.25)
    assert hit is not None and hit[0] == Trigger.DAILY_LOSS and "4.10%" in hit[1]
    assert book == before
    assert ll.intrabar_breach(book, Decimal(961), DAY0 + H4_MS + 60_000, 0.04, 0.25) is None
    # a new UTC day whose first snapshot is not in yet: yesterday's start is no daily baseline
    assert ll.intrabar_breach(book, Decimal(959), DAY0 + DAY_MS + 30_000, 0.04, 0.25) is None
    cum = ll.intrabar_breach(book, Decimal(700), DAY0 + DAY_MS + 30_000, 0.04, 0.25)
    assert cum is not None and cum[0] == Trigger.CUMULATIVE_LOSS
    assert ll.intrabar_breach(ll.LossBook(), Decimal(1), DAY0, 0.04, 0.25) is None   # no baseline
