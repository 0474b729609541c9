"""The idempotency protocol against a scripted venue: one order per intent, whatever fails."""

from decimal import Decimal

import pytest
from tm_common.errors import TransientError
from tm_common.events import OrderApproved
from tm_executor.placement import OrderPlacer

from .fakes import Clock, FakeVenue, links, settings
from .fakes import link as order_link_id


def intent(i="intent-1", order_type="Market", price=None) -> OrderApproved:
    return OrderApproved(intent_id=i, instrument="BTCUSDT", bar_time_ms=1, side="Buy",
                         qty=Decimal("0.010"), target_qty=Decimal("0.010"),
                         order_type=order_type, price=Decimal(price) if price else None)


def placer(venue, **kw):
    clock = Clock()
    s = settings(**kw)
    return OrderPlacer(venue, s, links(s), sleep=clock.sleep, clock=clock), clock


async def test_happy_path_places_once_and_settles_with_the_fill():
    v = FakeVenue()
    p, _ = placer(v)
    out = await p.execute(intent())
    assert out.accepted and out.settled and out.placed and v.place_calls == 1
    assert out.order.order_link_id == order_link_id("intent-1") == out.link_id
    assert [f.exec_id for f in out.fills] == ["e-o1"]


async def test_existing_order_is_reported_without_placing():
    v = FakeVenue()
    p, _ = placer(v)
    await p.execute(intent())
    again = await p.execute(intent())          # a redelivery after a crash
    assert v.place_calls == 1 and len(v.orders) == 1
    assert again.accepted and not again.placed and again.settled


async def test_timeout_after_processing_is_found_not_placed_again():
    v = FakeVenue(place_faults=["timeout_after"])
    p, _ = placer(v)
    out = await p.execute(intent())
    assert v.place_calls == 1 and len(v.orders) == 1 and out.settled


async def test_5xx_and_rate_limit_are_retried_with_waits():
    v = FakeVenue(place_faults=["5xx", "rate", "5xx"])
    p, clock = placer(v, retry_backoff_s=0.05)
    out = await p.execute(intent())
    assert out.settled and v.place_calls == 4 and len(v.orders) == 1
    # backoff, then the wait until the rate-limit reset, then the doubled backoff
    assert clock.sleeps == [0.05, 0.25, 0.2]


async def test_lagging_lookup_then_duplicate_link_id_resolves_to_the_first_order():
    v = FakeVenue(place_faults=["timeout_after"], lookup_misses=1)
    p, _ = placer(v)
    out = await p.execute(intent())
    assert v.place_calls == 2 and len(v.orders) == 1          # 2nd answered 110072
    assert out.accepted and "duplicate orderLinkId: looked up" in out.notes


async def test_rejection_after_an_ambiguous_attempt_looks_again_before_concluding():
    # The first attempt landed but its answer was lost and the venue lags; the second is
    # refused for margin (the first used it): the order exists and must be reported.
    v = FakeVenue(place_faults=["timeout_after", "reject:110007"], lookup_misses=1)
    p, _ = placer(v)
    out = await p.execute(intent())
    assert out.accepted and len(v.orders) == 1 and v.place_calls == 2


async def test_plain_rejection_ends_the_intent_with_its_code():
    v = FakeVenue(place_faults=["reject:110007"])
    p, _ = placer(v)
    out = await p.execute(intent())
    assert not out.accepted and out.ret_code == 110007 and not out.fatal and not v.orders


async def test_fatal_auth_error_is_a_fatal_rejection():
    v = FakeVenue(place_faults=["fatal:10003"])
    p, _ = placer(v)
    out = await p.execute(intent())
    assert not out.accepted and out.fatal and out.ret_code == 10003


async def test_deadline_leaves_the_intent_for_a_later_retry():
    v = FakeVenue(place_faults=["5xx"] * 100)
    p, clock = placer(v, intent_deadline_s=1.0, retry_backoff_s=0.1, max_backoff_s=0.4)
    with pytest.raises(TransientError, match="deadline"):
        await p.execute(intent())
    assert clock.t <= 1.0 and not v.orders


async def test_place_attempts_are_bounded_per_handling():
    v = FakeVenue(place_faults=["5xx"] * 100)
    p, _ = placer(v, place_attempts=3, intent_deadline_s=1000)
    with pytest.raises(TransientError, match="after 3 attempts"):
        await p.execute(intent())
    assert v.place_calls == 3


async def test_late_executions_are_polled_until_complete():
    v = FakeVenue(fill_late=3)
    p, clock = placer(v, fill_wait_s=5.0)
    out = await p.execute(intent())
    assert out.settled and v.exec_calls == 4 and clock.sleeps


async def test_fill_wait_bounds_the_poll_and_reports_unsettled():
    v = FakeVenue(fill_late=10_000)
    p, clock = placer(v, fill_wait_s=0.5)
    out = await p.execute(intent())
    assert out.accepted and not out.settled and out.fills == () and clock.t <= 1.0


async def test_resting_limit_order_is_reported_open_without_waiting():
    v = FakeVenue(limit_rests=True)
    p, clock = placer(v)
    out = await p.execute(intent(order_type="Limit", price="100.0"))
    assert out.accepted and out.order.status == "New" and not out.settled
    assert clock.sleeps == [] and v.exec_calls == 0


async def test_a_first_handling_sends_without_a_lookup_every_other_looks_first():
    v = FakeVenue()
    p, _ = placer(v)
    out = await p.execute(intent(), first=True)
    assert out.placed and v.place_calls == 1
    assert v.lookups == 0 and v.exec_calls == 1   # a market order filled: place, executions
    again = await p.execute(intent())           # any later handling: looked up, not placed
    assert again.accepted and not again.placed and v.place_calls == 1 and v.lookups == 1


async def test_a_first_handlings_lost_answer_is_looked_up_before_any_retry():
    # first try sent, its answer lost: the loop's next try looks up (no second order)
    v = FakeVenue(place_faults=["timeout_after"])
    p, _ = placer(v)
    out = await p.execute(intent(), first=True)
    assert out.accepted and v.place_calls == 1 and len(v.orders) == 1


async def test_a_first_handling_of_an_order_that_exists_resolves_through_the_duplicate_link():
    # the venue's own refusal (110072) is the second line: a "first" handling that was not
    # (a producer bug) still ends with the one order
    v = FakeVenue()
    p, _ = placer(v)
    await p.execute(intent())
    out = await p.execute(intent(), first=True)
    assert out.accepted and not out.placed and v.place_calls == 2 and len(v.orders) == 1
    assert "duplicate orderLinkId: looked up" in out.notes


async def test_a_market_order_not_filled_at_once_is_looked_up_and_polled():
    v = FakeVenue(fill_late=1)
    p, _ = placer(v)
    out = await p.execute(intent(), first=True)
    assert out.settled and out.order.status == "Filled" and v.lookups == 1
    assert [f.exec_id for f in out.fills] == ["e-o1"] and v.exec_calls == 2
