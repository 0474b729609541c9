from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tm_ingest.domain.bars import (
    INTERVAL_MS,
    BadBar,
    BarTracker,
    Decision,
    from_rest_row,
    from_ws_kline,
    grid_gaps,
    make_bar,
    order_and_dedupe,
)

T0 = 1_700_006_400_000 // INTERVAL_MS * INTERVAL_MS


def row(i, close="101.5"):
    return [str(T0 + i * INTERVAL_MS), "100", "102", "99", close, "5.5", "550"]


def test_rest_row_exact_decimals():
    b = from_rest_row("BTCUSDT", row(0, "101.10"))
    assert b.close == Decimal("101.10") and str(b.close) == "101.10"
    assert b.close_time_ms == T0 + INTERVAL_MS - 1 and b.source == "backfill"


@pytest.mark.parametrize("bad, why", [
    (["x", "1", "2", "0.5", "1", "1"], "non-numeric"),
    ([str(T0 + 1), "1", "2", "0.5", "1", "1"], "not on the"),
    ([str(T0), "1", "2", "0.5", "1", "-1"], "negative volume"),
    ([str(T0), "1", "0.9", "0.5", "1", "1"], "inconsistent"),
    ([str(T0), "NaN", "2", "0.5", "1", "1"], "non-finite"),
    ([str(T0), "1"], "fields"),
])
def test_bad_rows_rejected_with_reason(bad, why):
    with pytest.raises(BadBar, match=why):
        from_rest_row("BTCUSDT", bad)


def test_ws_kline_missing_key():
    with pytest.raises(BadBar, match="lacks"):
        from_ws_kline("BTCUSDT", {"start": T0, "open": "1"})


def test_tracker_decisions_and_gaps():
    t = BarTracker({})
    b0, b1, b3 = (from_rest_row("BTCUSDT", row(i)) for i in (0, 1, 3))
    assert t.decide(b0) is Decision.PUBLISH
    t.mark(b0)
    assert t.decide(b0) is Decision.DUPLICATE
    t.mark(b1)
    assert t.decide(b0) is Decision.LATE
    assert t.missing_before(b3) == [T0 + 2 * INTERVAL_MS]


@given(st.lists(st.integers(0, 60), min_size=1, max_size=80))
def test_order_and_dedupe_sorted_unique(idx):
    bars = [from_rest_row("BTCUSDT", row(i)) for i in idx]
    out = order_and_dedupe(bars)
    times = [b.open_time_ms for b in out]
    assert times == sorted(set(times)) and len(times) == len(set(idx))


def test_grid_gaps():
    times = [T0, T0 + INTERVAL_MS, T0 + 4 * INTERVAL_MS]
    assert grid_gaps(times) == [(T0 + 2 * INTERVAL_MS, T0 + 3 * INTERVAL_MS)]
    assert make_bar("X", T0, 1, 1, 1, 1, 0, source="live").volume == 0
