"""Funding rows from Bybit: parsed exactly, bad rows refused with a reason, each rate once."""

from decimal import Decimal

import pytest
from tm_ingest.domain.funding import BadFunding, funding_from_rest_row, new_rates


def row(t=1_700_000_000_000, rate="0.0001", symbol="BTCUSDT"):
    return {"symbol": symbol, "fundingRate": rate, "fundingRateTimestamp": str(t)}


def test_parses_the_rate_as_an_exact_decimal():
    f = funding_from_rest_row("BTCUSDT", row(rate="-0.00012345"))
    assert f.rate == Decimal("-0.00012345") and f.settle_time_ms == 1_700_000_000_000
    assert f.source == "live"


@pytest.mark.parametrize("bad, reason", [
    ([1, 2], "not an object"), (row(rate="abc"), "non-numeric"), (row(rate="NaN"), "out of range"),
    (row(rate="0.5"), "out of range"), (row(t=-5), "positive"), ({"symbol": "BTCUSDT"}, "lacks"),
    (row(symbol="ETHUSDT"), "another symbol")])
def test_bad_rows_are_refused_with_a_reason(bad, reason):
    with pytest.raises(BadFunding, match=reason):
        funding_from_rest_row("BTCUSDT", bad)


def test_new_rates_keeps_each_rate_once_and_advances_the_tracker():
    rates = [funding_from_rest_row("BTCUSDT", row(t)) for t in (3, 1, 2, 2)]
    last: dict[str, int] = {}
    assert [f.settle_time_ms for f in new_rates(rates, last)] == [1, 2, 3]
    assert last == {"BTCUSDT": 3}
    assert new_rates(rates, last) == []


def test_the_poller_also_polls_just_after_each_whole_hour():
    """Every funding interval Bybit uses (1, 2, 4, 8 h) settles on a whole UTC hour, so a poll
    30 s after each hour finds a new rate of any of them within the grace."""
    from tm_ingest.sources.funding import next_poll_s

    h = 3600 * 1000
    assert next_poll_s(h * 100 + 20 * 60_000, 600) == 600         # the hour far: the interval
    assert next_poll_s(h * 101 - 60_000, 600) == 90               # 60 s before + 30 s grace
    assert next_poll_s(h * 101 + 10_000, 600) == 20               # inside the grace: its end
    assert next_poll_s(h * 101 + 30_000, 10**6) == 3600           # just polled: the next hour
    assert next_poll_s(h * 8 * 100 + 4 * h - 60_000, 600) == 90   # a 4 h settlement, not an 8 h
