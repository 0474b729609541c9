"""Risk sizes with the venue's lot filters: it rounds down to the qty step within the minimum
and maximum quantity and the minimum notional, skips (with the reason) what it cannot send,
never counts that as an execution failure, and uses new filters as soon as the venue has them."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_common.errors import NotReady
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_common.testing.instrument_history import unshipped_spec
from tm_risk.domain.decision import decide_target
from tm_risk.domain.params import RiskParams
from tm_risk.domain.sizing import (
    leg_sizes,
    opening_qty,
    plan_orders,
    rounding_reason,
    target_qty,
    tiny_delta_reason,
)
from tm_risk.handler import RiskHandler
from tm_risk.testing import EQUITY, bar_env, snapshot_env, target_env

ZZZ = unshipped_spec()          # qty step 1, min qty 1, min notional 5 USDT, max market 100,000


def test_target_rounds_down_to_whole_coins():
    assert target_qty(0.01, Decimal(1000), Decimal("2.0"), ZZZ) == Decimal(5)       # 5.0 coins
    assert target_qty(0.0119, Decimal(1000), Decimal("2.0"), ZZZ) == Decimal(5)     # 5.95 → 5
    assert target_qty(-0.0119, Decimal(1000), Decimal("2.0"), ZZZ) == Decimal(-5)


def test_a_target_below_the_minimum_notional_is_zero_with_the_reason():
    # 2 coins at 2 USDT = 4 USDT < 5 USDT: the venue would refuse to open it (110094)
    assert target_qty(0.004, Decimal(1000), Decimal(2), ZZZ) == 0
    why = rounding_reason(0.004, Decimal(1000), Decimal(2), ZZZ)
    assert why == "target notional 4.00 USDT below the venue's minNotionalValue 5 USDT"
    # 0.5 coin: below the minimum quantity
    why = rounding_reason(0.001, Decimal(1000), Decimal(2), ZZZ)
    assert why is not None and "below minOrderQty 1 (qtyStep 1)" in why
    assert rounding_reason(0.01, Decimal(1000), Decimal(2), ZZZ) is None


def test_the_maximum_quantity_caps_the_target():
    lot = replace(ZZZ, max_order_qty=Decimal(300))
    assert target_qty(1.0, Decimal(1000), Decimal(2), lot) == Decimal(300)


def test_only_the_opening_part_must_meet_the_minimum_notional():
    kw = {"min_notional_usdt": Decimal(0), "min_delta_fraction": 0.0}
    p, eq = Decimal(2), Decimal(1000)
    assert opening_qty(Decimal(100), Decimal(102)) == 2                  # increase
    assert opening_qty(Decimal(100), Decimal(-3)) == 3                   # flip: the open leg
    assert opening_qty(Decimal(100), Decimal(98)) == 0                   # reduce-only
    assert "minNotionalValue 5 USDT" in tiny_delta_reason(Decimal(100), Decimal(102), p, eq, ZZZ, **kw)
    assert "minNotionalValue" in tiny_delta_reason(Decimal(100), Decimal(-2), p, eq, ZZZ, **kw)
    assert tiny_delta_reason(Decimal(100), Decimal(98), p, eq, ZZZ, **kw) is None     # exempt
    assert tiny_delta_reason(Decimal(2), Decimal(0), p, eq, ZZZ, **kw) is None        # a close
    assert tiny_delta_reason(Decimal(100), Decimal(103), p, eq, ZZZ, **kw) is None    # 6 USDT


@settings(deadline=None)
@given(total=st.integers(1, 10**5), max_qty=st.integers(10, 1000))
def test_legs_are_equal_on_the_grid_and_add_up(total, max_qty):
    legs = leg_sizes(Decimal(total), Decimal(max_qty), Decimal(1))
    assert sum(legs) == total and all(0 < q <= max_qty for q in legs)
    assert len(legs) == -(-total // max_qty) and max(legs) - min(legs) <= 1


def test_a_large_order_is_split_without_a_tiny_remainder():
    lot = replace(ZZZ, max_mkt_order_qty=Decimal(100))
    legs = plan_orders(Decimal(0), Decimal(201), lot)
    assert [leg.qty for leg in legs] == [67, 67, 67]          # not 100, 100, 1 (2 USDT)
    assert legs[-1].position_after == 201


def _params(**kw) -> RiskParams:
    return RiskParams(symbols=("ZZZUSDT",), instruments={"ZZZUSDT": ZZZ}, var_min_obs=6,
                      hrp_min_obs=6, window_bars=10, var_horizon_bars=1, **kw)


def _warm(params: RiskParams, equity: Decimal = Decimal(1000)) -> RiskHandler:
    h = RiskHandler(params)
    for i in range(12):
        h.process(bar_env("ZZZUSDT", i, Decimal("2.0") + Decimal(i % 3) / 100))
    h.process(snapshot_env(11, equity))
    return h


def test_a_tiny_target_is_skipped_with_the_reason_and_does_not_count_as_a_failure():
    h = _warm(_params(min_notional_usdt=Decimal(0), min_delta_fraction=0.0))
    d = decide_target(h.state, h.params, "ZZZUSDT", bar_env("ZZZUSDT", 11, 2).body.open_time_ms,
                      0.004)
    assert d.code == "tiny_delta" and not d.orders
    assert d.rejection is not None and "minNotionalValue 5 USDT" in d.rejection.reason
    out = h.process(target_env("ZZZUSDT", 11, 0.004))
    assert not [e for e in out if e.stream == "risk.order"]
    assert h.state.breaker.failures == 0


def test_new_filters_from_the_venue_apply_to_the_next_decision():
    h = _warm(_params(min_notional_usdt=Decimal(0), min_delta_fraction=0.0))
    t = bar_env("ZZZUSDT", 11, 2).body.open_time_ms
    before = decide_target(h.state, h.params, "ZZZUSDT", t, 0.1)      # 100 USDT at ~2.02
    assert [o.leg.qty for o in before.orders] == [Decimal(49)]
    changed = h.set_instruments({"ZZZUSDT": replace(ZZZ, qty_step=Decimal(10),
                                                    min_order_qty=Decimal(10))}, "test venue")
    assert changed == {"ZZZUSDT": "qty_step 1→10, min_order_qty 1→10"}
    after = decide_target(h.state, h.params, "ZZZUSDT", t, 0.1)
    assert [o.leg.qty for o in after.orders] == [Decimal(40)]        # rounded down, not refused
    assert h.set_instruments({"ZZZUSDT": h.params.instruments["ZZZUSDT"]}, "again") == {}


def test_nothing_is_decided_before_the_venue_s_filters_are_in():
    h = RiskHandler(RiskParams(symbols=("BTCUSDT", "ZZZUSDT"), instruments={}))
    assert h.instruments_ready() == (False, "no lot filters for BTCUSDT, ZZZUSDT from none yet")
    with pytest.raises(NotReady, match="no lot filters for BTCUSDT, ZZZUSDT"):
        h.process(snapshot_env(0, EQUITY))
    h.set_instruments({"BTCUSDT": DEFAULT_INSTRUMENTS["BTCUSDT"]}, "venue X")
    with pytest.raises(NotReady, match="no lot filters for ZZZUSDT from venue X"):
        h.process(snapshot_env(0, EQUITY))
    h.set_instruments({"ZZZUSDT": ZZZ, "OTHERUSDT": ZZZ}, "venue X")
    assert h.instruments_ready() == (True, "2 from venue X")
    assert set(h.params.instruments) == {"BTCUSDT", "ZZZUSDT"}          # others ignored
    h.process(snapshot_env(0, EQUITY))
