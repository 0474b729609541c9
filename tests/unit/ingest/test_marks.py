"""Ticker rows → intra-bar marks: the mark price exactly, lastPrice as the fallback, bad rows
refused with a reason."""

from decimal import Decimal

import pytest
from tm_ingest.domain.marks import BadMark, mark_from_ticker
from tm_ingest.publisher import mark_envelope

T = 1_700_000_060_000


def row(mark="42000.5", last="42001", symbol="BTCUSDT"):
    return {"symbol": symbol, "markPrice": mark, "lastPrice": last, "indexPrice": "41999"}


def test_the_mark_is_the_exact_mark_price_with_the_last_price_beside_it():
    m = mark_from_ticker("BTCUSDT", row(), T)
    assert (m.instrument, m.at_ms, m.mark_price, m.last_price, m.source) == \
        ("BTCUSDT", T, Decimal("42000.5"), Decimal("42001"), "live")
    env = mark_envelope(m, 7)
    assert env.type == "mark.updated" and env.ts_event_ns == T * 1_000_000
    assert env.event_id == mark_envelope(m, 8).event_id        # the id is (instrument, at_ms)


def test_without_a_mark_price_the_last_price_is_the_mark():
    m = mark_from_ticker("BTCUSDT", row(mark=""), T)
    assert m.mark_price == Decimal("42001") and m.last_price == Decimal("42001")
    m = mark_from_ticker("BTCUSDT", {"symbol": "BTCUSDT", "markPrice": "7.5"}, T)
    assert m.mark_price == Decimal("7.5") and m.last_price is None


@pytest.mark.parametrize("bad, at_ms, reason", [
    ([1], T, "not an object"), (row(symbol="ETHUSDT"), T, "another symbol"),
    (row(mark="abc"), T, "markPrice 'abc' is not a number"),
    (row(mark="NaN"), T, "not a positive price"), (row(mark="-1"), T, "not a positive price"),
    (row(mark="0"), T, "not a positive price"), (row(mark="", last=""), T, "neither"),
    ({"symbol": "BTCUSDT"}, T, "neither"), (row(), 0, "positive ms timestamp"),
    (row(), True, "positive ms timestamp")])
def test_bad_rows_are_refused_with_a_reason(bad, at_ms, reason):
    with pytest.raises(BadMark, match=reason):
        mark_from_ticker("BTCUSDT", bad, at_ms)
