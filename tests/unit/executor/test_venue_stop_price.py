"""Where the venue stop loss belongs (:mod:`tm_executor.domain.stops`): the loss at the stop is
the ratio of equity, never more; a long that cannot lose that much gets none; a stop is moved
only when it is off by more than the tolerance."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tm_executor.config import ExecutorSettings
from tm_executor.domain.reconcile import ExchangePosition
from tm_executor.domain.stops import (
    is_stop_fill,
    needs_move,
    stop_intent_id,
    stop_price,
)

D = Decimal
TICK = D("0.1")


def test_a_long_s_stop_loses_the_ratio_of_equity_rounded_away_from_the_market():
    # 2 BTC at 20,000, equity 100,000, 10 %: 10,000 USDT over 2 BTC = 5,000 below the entry
    assert stop_price(D(2), D(20_000), D(100_000), 0.10, TICK) == D(15_000)
    # 3 BTC: 3,333.33... below -> rounded down to the tick (a loss of at most 10 %)
    got = stop_price(D(3), D(20_000), D(100_000), 0.10, TICK)
    assert got == D("16666.6")
    assert (D(20_000) - got) * 3 >= D(10_000)
    assert (D(20_000) - got - TICK) * 3 < D(10_000) + 3 * TICK


def test_a_short_s_stop_sits_above_and_rounds_up():
    got = stop_price(D(-3), D(20_000), D(100_000), 0.10, TICK)
    assert got == D("23333.4")
    assert (got - D(20_000)) * 3 >= D(10_000)


def test_no_stop_where_there_is_nothing_to_protect():
    # a long of 0.4 BTC cannot lose 10,000 USDT (all of it is 8,000): no stop at all
    assert stop_price(D("0.4"), D(20_000), D(100_000), 0.10, TICK) is None
    # a short can always lose it: its stop exists, far above
    assert stop_price(D("-0.4"), D(20_000), D(100_000), 0.10, TICK) == D(45_000)
    for qty, avg, equity, ratio in ((D(0), D(20_000), D(100_000), 0.1),
                                    (D(1), D(20_000), D(0), 0.1),
                                    (D(1), D(20_000), D(100_000), 0.0)):
        assert stop_price(qty, avg, equity, ratio, TICK) is None


def test_a_stop_moves_only_when_missing_or_off_by_more_than_the_tolerance():
    avg, wanted = D(20_000), D(15_000)            # a distance of 5,000: tolerance 500
    assert needs_move(D(0), wanted, avg)           # missing
    assert not needs_move(D(15_400), wanted, avg)  # close enough
    assert needs_move(D(15_600), wanted, avg)      # too tight
    assert needs_move(D(14_400), wanted, avg)      # too loose
    assert needs_move(D(15_000), None, avg)        # none wanted: cancelled
    assert not needs_move(D(0), None, avg)


def test_the_venue_position_carries_its_stop():
    row = {"symbol": "BTCUSDT", "side": "Sell", "size": "2", "avgPrice": "20000",
           "stopLoss": "25000"}
    assert ExchangePosition.from_bybit(row) == ExchangePosition("BTCUSDT", D(-2), D(20_000),
                                                                D(25_000))
    assert ExchangePosition.from_bybit({**row, "stopLoss": ""}).stop_loss == 0


def test_only_the_venue_s_stop_loss_trades_are_stop_fills():
    assert is_stop_fill({"execType": "Trade", "stopOrderType": "StopLoss"})
    assert not is_stop_fill({"execType": "Trade", "stopOrderType": ""})
    assert not is_stop_fill({"execType": "Funding", "stopOrderType": "StopLoss"})
    assert stop_intent_id("BTCUSDT", "o-1") == "stop:BTCUSDT:o-1"


@pytest.mark.parametrize(("mode", "env", "ratio"), [
    ("replay", None, 0.0), ("paper", None, 0.10), ("live", None, 0.10),
    ("replay", 0.2, 0.2), ("paper", 0.0, 0.0)])
def test_the_ratio_in_effect_follows_the_mode_unless_set(mode, env, ratio):
    s = ExecutorSettings(mode=mode, venue_stop_loss=env)
    assert s.stop_loss_ratio == ratio
