"""The daily and cumulative loss limits: their baselines move only with the UTC day, inception
and a recorded reset, never with the breaker."""

from __future__ import annotations

from decimal import Decimal

from tm_risk.domain import breaker as brk
from tm_risk.domain import loss_limits as ll
from tm_risk.domain.breaker import DAY_MS, Breaker, State, Trigger, fire
from tm_risk.domain.params import H4_MS, BreakerParams

DAY0 = 20_000 * DAY_MS


def _book(*equities_at):
    book = ll.LossBook()
    for eq, t in equities_at:
        book = ll.on_equity(book, Decimal(str(eq)), t)
    return book


def test_daily_baseline_is_the_first_snapshot_of_the_utc_day():
    book = _book((100, DAY0 + H4_MS), (98, DAY0 + 2 * H4_MS))
    assert book.day_start_equity == 100 and book.baseline_equity == 100
    assert ll.breach(book, Decimal(96), 0.04, 0.25) is None            # exactly 4 %: not over
    trig, why = ll.breach(book, Decimal("95.99"), 0.04, 0.25)
    assert trig == Trigger.DAILY_LOSS and "4.01%" in why and "UTC day" in why
    book = ll.on_equity(book, Decimal(97), DAY0 + DAY_MS)               # 00:00 UTC: a new day
    assert book.day_start_equity == 97 and book.baseline_equity == 100
    assert ll.breach(book, Decimal("95.99"), 0.04, 0.25) is None


def test_cumulative_from_inception_across_days_and_a_zero_limit_is_off():
    book = _book((1000, DAY0))
    for d in range(1, 15):                       # lose 3 % a day: never a daily breach at 4 %
        eq = Decimal(1000) * Decimal("0.97") ** d
        book = ll.on_equity(book, eq, DAY0 + d * DAY_MS)
        hit = ll.breach(book, eq, 0.04, 0.25)
        if 1 - float(eq) / 1000 <= 0.25:
            assert hit is None and d < 10
        else:
            assert hit is not None and hit[0] == Trigger.CUMULATIVE_LOSS
            assert "since inception" in hit[1]
            assert ll.breach(book, eq, 0.04, 0.0) is None               # 0 = off
            break
    else:
        raise AssertionError("a 26 % cumulative loss did not trip")


def test_the_breaker_closing_again_moves_no_baseline():
    """The drawdown peak is re-based when the breaker leaves OPEN; the loss baselines are not."""
    p = BreakerParams(drawdown_limit=0.05, cooldown_ms=H4_MS)
    b, book, eq, t = Breaker(), ll.LossBook(), Decimal(1000), DAY0
    trips = []
    for _ in range(40):                          # −1.9 % per bar
        t += H4_MS
        eq = eq * Decimal("0.981")
        book = ll.on_equity(book, eq, t)
        breach = ll.breach(book, eq, 0.0, 0.25)
        b, ts = brk.on_snapshot(b, eq, t, t, p, breach)
        trips += [x.trigger for x in ts]
        b, ts = brk.on_clock(b, t + p.cooldown_ms, {}, H4_MS, p)
        trips += [x.trigger for x in ts]
    assert Trigger.COOLDOWN_ELAPSED in trips and Trigger.DRAWDOWN in trips
    assert trips.count(Trigger.CUMULATIVE_LOSS) == 1
    assert b.state == State.OPEN and b.hold == "cumulative_loss"
    # the first snapshot (after one losing bar) is inception; no trip or recovery moved it
    assert book.baseline_equity == Decimal("981") and book.baseline_reason == "inception"


def test_a_recorded_reset_rebases_the_cumulative_baseline_with_its_reason():
    book = _book((1000, DAY0), (700, DAY0 + 3 * DAY_MS))
    assert ll.breach(book, Decimal(700), 0.0, 0.25)[0] == Trigger.CUMULATIVE_LOSS
    book = ll.rebase(book, Decimal(700), DAY0 + 3 * DAY_MS + 5, "new capital plan",
                     cumulative=True, daily=False)
    assert ll.breach(book, Decimal(700), 0.0, 0.25) is None
    assert book.baseline_equity == 700 and "new capital plan" in book.baseline_reason
    trig, why = ll.breach(book, Decimal(520), 0.0, 0.25)
    assert trig == Trigger.CUMULATIVE_LOSS and "new capital plan" in why


def test_a_limit_trip_and_a_kill_carry_their_own_trigger_and_reason():
    b, t = fire(Breaker(), Trigger.DAILY_LOSS, "daily loss 5.00% ...", 1)
    assert (t.trigger, t.reason, b.hold) == (Trigger.DAILY_LOSS, "daily loss 5.00% ...",
                                             "daily_loss")
