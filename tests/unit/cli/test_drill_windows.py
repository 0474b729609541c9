"""The drills' window check (``tm_app.windows``): chaos and faults refuse a window the shipped
history cannot feed, naming the symbol, or the missing file."""

from __future__ import annotations

from tm_app.demo import parse_day_ms
from tm_app.windows import BAR_MS, window_end_ms, window_shortfall


def test_a_covered_window_passes():
    assert window_shortfall(["BTCUSDT", "ETHUSDT"], "2024-01-01", parse_day_ms("2024-01-01"),
                            10) is None


def test_a_window_past_the_history_names_the_symbol_and_the_option():
    why = window_shortfall(["BTCUSDT"], "2030-01-01", parse_day_ms("2030-01-01"), 10,
                           fewer="--bars")
    assert why == ("BTCUSDT: 0 shipped bars from 2030-01-01 in 10 bar times; "
                   "choose an earlier --start or fewer --bars")


def test_a_missing_history_file_is_the_message():
    why = window_shortfall(["NOPEUSDT"], "2024-01-01", parse_day_ms("2024-01-01"), 10)
    assert why is not None and "NOPEUSDT_4h.csv" in why


def test_the_window_end_is_the_last_bar_open_time():
    assert window_end_ms(0, 1) == 0 and window_end_ms(0, 3) == 2 * BAR_MS == 2 * 4 * 3600_000
