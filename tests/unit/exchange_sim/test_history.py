"""The shipped history and its loader (tm_common.history)."""

from __future__ import annotations

import csv
from decimal import Decimal
from itertools import pairwise

import pytest
from tm_common.history import (
    BAR_INTERVAL_MS,
    DAY_MS,
    HistoryFileError,
    bars_to_frame,
    history_dir,
    load_bars,
    load_dvol,
    load_funding,
)

GAP_MS = 1679659200000  # 2023-03-24 12:00 UTC
SOL_FUNDING_START_MS = 1670803200000  # 2022-12-12 00:00 UTC


def test_history_dir_is_the_repository_data_folder():
    assert history_dir().parts[-2:] == ("data", "history")
    assert (history_dir() / "PROVENANCE.md").is_file()


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
def test_bars_are_complete_except_the_one_known_gap(symbol):
    bars = load_bars(symbol)
    assert len(bars) == 7661
    times = [b.open_time_ms for b in bars]
    assert times == sorted(set(times))
    gaps = [a for a, b in pairwise(times) if b - a != BAR_INTERVAL_MS]
    assert gaps == [GAP_MS - BAR_INTERVAL_MS]
    assert GAP_MS not in times


def test_prices_keep_the_csv_text_exactly():
    path = history_dir() / "ETHUSDT_4h.csv"
    with path.open() as fh:
        rows = list(csv.reader(fh))[1:]
    bars = load_bars("ETHUSDT")
    for row, bar in zip(rows[:500], bars[:500]):
        assert [str(bar.open_time_ms), bar.open, bar.high, bar.low, bar.close, bar.volume] == row
        assert str(bar.decimal("close")) == row[4]
        assert bar.decimal("low") <= min(Decimal(row[1]), Decimal(row[4]))


def test_range_selection_is_inclusive():
    bars = load_bars("BTCUSDT", start_ms=GAP_MS - 2 * BAR_INTERVAL_MS,
                     end_ms=GAP_MS + BAR_INTERVAL_MS)
    assert [b.open_time_ms for b in bars] == [GAP_MS - 2 * BAR_INTERVAL_MS,
                                              GAP_MS - BAR_INTERVAL_MS, GAP_MS + BAR_INTERVAL_MS]
    assert load_bars("BTCUSDT", start_ms=0, end_ms=1) == []


def test_funding_and_dvol():
    sol = load_funding("SOLUSDT")
    assert sol[0].time_ms == SOL_FUNDING_START_MS and len(sol) == 2796
    btc = load_funding("BTCUSDT")
    assert all(b.time_ms - a.time_ms == 8 * 3600 * 1000 for a, b in pairwise(btc))
    assert any("e" in f.rate for f in btc)  # exponent form stays text, Decimal reads it
    assert Decimal("4.522e-05") in {f.rate_decimal for f in btc}
    dvol = load_dvol()
    assert len(dvol) == 968 and dvol[0].known_at_ms == dvol[0].day_ms + DAY_MS


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(HistoryFileError, match=str(tmp_path / "XRPUSDT_4h.csv")):
        load_bars("XRPUSDT", directory=tmp_path)
    with pytest.raises(HistoryFileError, match="funding"):
        load_funding("BTCUSDT", directory=tmp_path)
    (tmp_path / "BTCUSDT_4h.csv").write_text("time,o\n1,2\n")
    with pytest.raises(HistoryFileError, match="expected header"):
        load_bars("BTCUSDT", directory=tmp_path)


def test_frame_for_models():
    frame = bars_to_frame(load_bars("SOLUSDT")[:10])
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index.name == "open_time_ms" and len(frame) == 10
