"""Round trips from hand-built fills and funding: open, add, reduce, close, flip; fees split
on a flip, funding charged to the trade open when it settles, holding times; the statistics."""

from __future__ import annotations

import csv
from decimal import Decimal as D

import pytest
from tm_app.report.trades import round_trips, trade_row, trade_stats, write_csv
from tm_common.events.orders import FundingSettled, OrderFilled

H = 3_600_000
T0 = 1_735_689_600_000          # 2025-01-01T00:00:00Z


def fill(side: str, qty: str, price: str, fee: str = "0", *, at_h: float = 0,
         inst: str = "BTCUSDT") -> OrderFilled:
    return OrderFilled(intent_id="i", order_link_id="l", order_id="o", exec_id="e", instrument=inst,
                       side=side, qty=D(qty), price=D(price), fee=D(fee),
                       exec_time_ms=T0 + int(at_h * H))


def funding(payment: str, *, at_h: float, inst: str = "BTCUSDT", qty: str = "1") -> FundingSettled:
    return FundingSettled(instrument=inst, settle_time_ms=T0 + int(at_h * H), rate=D("0.0001"),
                          position_qty=D(qty), mark_price=D(100), payment=D(payment))


def test_open_add_reduce_close_is_one_long_trade_with_averages_fees_and_funding():
    trades, stray = round_trips([
        fill("Buy", "1", "100", "0.1", at_h=0),           # open long 1 @ 100
        fill("Buy", "1", "110", "0.2", at_h=4),           # add: 2 @ cost 105
        funding("0.5", at_h=8),                           # paid while long
        fill("Sell", "1", "120", "0.3", at_h=12),         # reduce 1: +15 against cost 105
        fill("Sell", "1", "90", "0.4", at_h=16),          # close 1: −15
    ])
    assert stray == 0
    [t] = trades
    assert (t.side, t.qty, t.fills) == ("long", D(2), 4)
    assert t.entry_price == D(105) and t.exit_price == D(105)
    assert t.price_pnl == D(0) and t.fees == D("1.0") and t.funding == D("0.5")
    assert t.pnl == D("-1.5")
    assert not t.is_open and t.exit_time_ms == T0 + 16 * H and t.holding_hours() == 16


def test_a_short_earns_when_the_price_falls():
    [t], _ = round_trips([fill("Sell", "2", "100", at_h=0), fill("Buy", "2", "95", at_h=4)])
    assert (t.side, t.price_pnl, t.pnl) == ("short", D(10), D(10))


def test_reduce_then_add_takes_pnl_against_the_average_cost_not_the_entry_average():
    # open 10 @ 100, sell 9 @ 110 (+90), buy 9 @ 120 → cost (1×100 + 9×120)/10 = 118
    [t], _ = round_trips([fill("Buy", "10", "100"), fill("Sell", "9", "110", at_h=4),
                          fill("Buy", "9", "120", at_h=8), fill("Sell", "10", "118", at_h=12)])
    assert t.price_pnl == D(90)                      # the last close is at cost: 0
    assert t.entry_price == D(2080) / D(19)          # shown: qty-weighted over both entries
    assert t.qty == D(10)                            # the largest position held


def test_a_flip_closes_one_trade_and_opens_the_next_with_the_fee_split_by_quantity():
    trades, _ = round_trips([
        fill("Buy", "1", "100", "0.1", at_h=0),
        fill("Sell", "3", "110", "0.6", at_h=4),          # close 1 (+10), open short 2
        funding("0.2", at_h=8, qty="-2"),                 # charged to the short
        fill("Buy", "2", "105", "0.2", at_h=12),          # close the short: +10
    ])
    long_, short = trades
    assert (long_.side, short.side) == ("long", "short")
    assert long_.exit_time_ms == short.entry_time_ms == T0 + 4 * H
    assert long_.fees == D("0.3") and short.fees == D("0.6")        # 0.6 split 1 : 2
    assert long_.funding == 0 and short.funding == D("0.2")
    assert long_.pnl == D("9.7") and short.pnl == D("9.2")
    assert short.entry_price == D(110) and short.exit_price == D(105) and short.qty == D(2)
    assert [x.holding_hours() for x in trades] == [4, 8]


def test_instruments_are_separate_and_an_open_trade_is_marked_at_the_last_mark():
    trades, stray = round_trips([
        funding("0.7", at_h=0, inst="ETHUSDT"),           # nothing open on ETH: unattributed
        fill("Buy", "1", "100", "0.1", at_h=0),
        fill("Sell", "5", "20", "0.05", at_h=4, inst="ETHUSDT"),
        fill("Sell", "1", "101", at_h=8),
    ], marks={"ETHUSDT": D(18)})
    assert stray == D("0.7")
    btc, eth = sorted(trades, key=lambda t: t.instrument)
    assert not btc.is_open and btc.pnl == D("0.9")
    assert eth.is_open and eth.exit_time_ms is None and eth.exit_price is None
    assert eth.unrealised == D(10) and eth.pnl == D("9.95")
    assert eth.holding_hours() is None and eth.holding_hours(T0 + 10 * H) == 6
    assert trade_row(eth, T0 + 10 * H)["status"] == "open"


def test_other_events_and_empty_fills_are_ignored():
    trades, stray = round_trips([object(), fill("Buy", "0", "100")])
    assert trades == [] and stray == 0


def test_statistics_over_closed_trades():
    trades, _ = round_trips([
        fill("Buy", "1", "100", at_h=0), fill("Sell", "1", "110", at_h=4),     # +10, 4 h
        fill("Buy", "1", "100", at_h=8), fill("Sell", "1", "95", at_h=20),     # −5, 12 h
        fill("Buy", "1", "100", at_h=24), fill("Sell", "1", "130", at_h=26),   # +30, 2 h
        fill("Buy", "1", "100", at_h=30),                                      # open
    ], marks={"BTCUSDT": D(50)})
    st = trade_stats(trades)
    assert (st["trades"], st["open"], st["wins"], st["losses"]) == (3, 1, 2, 1)
    assert st["win_rate"] == pytest.approx(2 / 3)
    assert st["profit_factor"] == pytest.approx(40 / 5)
    assert st["expectancy"] == pytest.approx(35 / 3)
    assert st["avg_holding_hours"] == pytest.approx(6) and st["median_holding_hours"] == 4
    assert (st["best"], st["worst"]) == (30, -5)
    none = trade_stats(trades[:1])                    # no losing trade: no profit factor
    assert none["profit_factor"] is None and none["win_rate"] == 1
    assert trade_stats([])["expectancy"] is None


def test_csv_has_a_header_utc_times_and_one_row_per_trade(tmp_path):
    trades, _ = round_trips([fill("Buy", "1", "100", "0.1"), fill("Sell", "1", "110", at_h=4),
                             fill("Sell", "2", "50", at_h=8, inst="ETHUSDT")],
                            marks={"ETHUSDT": D(40)})
    write_csv([trade_row(t, T0 + 12 * H) for t in trades], tmp_path / "trades.csv")
    rows = list(csv.DictReader((tmp_path / "trades.csv").open()))
    assert [r["instrument"] for r in rows] == ["BTCUSDT", "ETHUSDT"]
    assert rows[0]["entry_time_utc"] == "2025-01-01T00:00:00Z"
    assert rows[0]["exit_time_utc"] == "2025-01-01T04:00:00Z"
    assert float(rows[0]["pnl"]) == pytest.approx(9.9) and rows[0]["holding_hours"] == "4"
    assert rows[1]["exit_time_utc"] == "" and rows[1]["exit_price"] == ""
    assert rows[1]["status"] == "open" and float(rows[1]["pnl"]) == pytest.approx(20)
