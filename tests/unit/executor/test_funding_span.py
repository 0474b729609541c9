"""Which bars ask the venue for funding (a funding time of the instrument's interval falls in
them), and which span a funding bar asks for (``tm_executor.domain.funding``): from just after
the newest settlement published, never from further back than a day before the previous look-up,
the venue's default 7 days at first, cut into windows Bybit accepts (at most 7 days each)."""

from __future__ import annotations

import pytest
from tm_executor.domain.funding import (
    DAY_MS,
    LATE_MS,
    WINDOW_MS,
    settles_in_bar,
    span_start,
    windows,
)

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


HOUR_MS = 3600 * 1000
BAR_MS = 4 * HOUR_MS


@pytest.mark.parametrize("interval_h,asking", [
    (8, [False, True, False, True, False, True]),   # closes 04, 08, 12, 16, 20, 24 h: 08/16/24
    (4, [True] * 6),
    (2, [True] * 6),                                 # two settlements in each bar
    (1, [True] * 6),
])
def test_a_bar_asks_when_a_funding_time_of_its_instrument_falls_in_it(interval_h, asking):
    day = NOW - NOW % (24 * HOUR_MS)
    got = [settles_in_bar(day + k * BAR_MS, day + (k + 1) * BAR_MS, interval_h * HOUR_MS)
           for k in range(6)]
    assert got == asking


def test_a_settlement_at_a_bars_open_belongs_to_the_bar_before():
    day = NOW - NOW % (24 * HOUR_MS)
    assert settles_in_bar(day - BAR_MS, day, 8 * HOUR_MS)          # 20:00 → 00:00 holds 00:00
    assert not settles_in_bar(day, day + BAR_MS, 8 * HOUR_MS)      # 00:00 → 04:00 holds none
    with pytest.raises(ValueError, match="funding interval"):
        settles_in_bar(day, day + BAR_MS, 0)
