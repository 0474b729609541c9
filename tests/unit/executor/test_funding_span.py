"""Which span a funding bar asks the venue for (``tm_executor.domain.funding``): from just after
the newest settlement published, never from further back than a day before the previous look-up,
the venue's default 7 days at first, cut into windows Bybit accepts (at most 7 days each)."""

from __future__ import annotations

import pytest
from tm_executor.domain.funding import DAY_MS, LATE_MS, WINDOW_MS, span_start, windows

NOW = 1_700_000_000_000 - 1_700_000_000_000 % (8 * 3600 * 1000)


def test_the_first_look_up_asks_for_the_venues_default_week():
    assert span_start(None, None, NOW) == NOW - WINDOW_MS


def test_a_look_up_goes_on_from_the_newest_settlement_published():
    since = NOW - 8 * 3600 * 1000
    assert span_start(since, since, NOW) == since + 1


def test_after_a_flat_fortnight_it_asks_from_a_day_before_its_last_look_up():
    since, asked = NOW - 14 * DAY_MS, NOW - 8 * 3600 * 1000
    assert span_start(since, asked, NOW) == asked - LATE_MS
    assert len(windows(span_start(since, asked, NOW), NOW)) == 1   # one query, not a walk


def test_a_settlement_missed_while_down_is_still_asked_for():
    since = NOW - 10 * DAY_MS                        # down for 10 days: never asked since then
    assert span_start(since, since, NOW) == since + 1
    assert span_start(since, None, NOW) == since + 1  # a snapshot from before the field


@pytest.mark.parametrize("days", [0, 1, 7, 8, 14, 15, 100])
def test_windows_cover_the_span_once_in_queries_bybit_accepts(days):
    start, end = NOW - days * DAY_MS - 1, NOW
    got = windows(start, end)
    assert got[0][0] == start and got[-1][1] == end
    assert all(lo <= hi and hi - lo <= WINDOW_MS for lo, hi in got)
    assert all(b[0] == a[1] + 1 for a, b in zip(got, got[1:], strict=False))
    assert len(got) == max(1, -(-(end - start + 1) // (WINDOW_MS + 1)))


def test_an_empty_span_asks_nothing():
    assert windows(NOW + 1, NOW) == []
