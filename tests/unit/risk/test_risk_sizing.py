"""Lot rounding, order legs, tiny-delta rules and deterministic intent ids."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tm_exchange_sim.matching.instruments import DEFAULT_INSTRUMENTS
from tm_risk.domain.sizing import (
    canon,
    flatten_intent_id,
    intent_id,
    plan_orders,
    round_qty,
    target_qty,
    tiny_delta_reason,
    to_decimal,
)

LOTS = st.sampled_from(sorted(DEFAULT_INSTRUMENTS))
fractions = st.floats(-20, 20, allow_nan=False)
equities = st.decimals(Decimal("0.01"), Decimal("1e9"), places=2)
prices = st.decimals(Decimal("0.001"), Decimal("2e6"), places=3)


@settings(deadline=None)
@given(LOTS, fractions, equities, prices)
def test_target_qty_is_on_grid_within_min_max_and_toward_zero(sym, f, equity, price):
    lot = DEFAULT_INSTRUMENTS[sym]
    q = target_qty(f, equity, price, lot)
    raw = to_decimal(f) * equity / price
    assert q % lot.qty_step == 0
    assert abs(q) <= lot.max_order_qty
    assert q == 0 or abs(q) >= lot.min_order_qty
    assert abs(q) <= abs(raw)
    assert q == 0 or (q > 0) == (raw > 0)
    assert q == 0 or abs(q) * price >= lot.min_notional   # the venue would let it open
    floor = (abs(raw) // lot.qty_step) * lot.qty_step
    if lot.min_order_qty <= abs(raw) <= lot.max_order_qty and floor * price >= lot.min_notional:
        assert abs(raw) - abs(q) < lot.qty_step       # only the sub-step remainder is lost


@settings(deadline=None)
@given(LOTS, st.decimals(Decimal("-1e7"), Decimal("1e7"), places=6))
def test_round_qty_never_exceeds_a_cap_or_goes_under_min(sym, qty):
    lot = DEFAULT_INSTRUMENTS[sym]
    q = round_qty(qty, lot)
    assert q == 0 or lot.min_order_qty <= abs(q) <= lot.max_order_qty
    assert abs(q) <= abs(qty) and q % lot.qty_step == 0


def test_examples():
    btc = DEFAULT_INSTRUMENTS["BTCUSDT"]
    assert target_qty(0.5, Decimal(10_000), Decimal(40_000), btc) == Decimal("0.125")
    assert target_qty(-0.5, Decimal(10_000), Decimal("40000.5"), btc) == Decimal("-0.124")
    assert target_qty(0.001, Decimal(10_000), Decimal(40_000), btc) == 0       # 0.00025 < min
    assert target_qty(1e6, Decimal("1e9"), Decimal(1), btc) == btc.max_order_qty
    assert to_decimal(0.1) == Decimal("0.1") and canon(Decimal("1.500")) == "1.5"
    with pytest.raises(ValueError):
        to_decimal(float("nan"))


def _grid(lot, n):
    return lot.qty_step * n


@settings(deadline=None)
@given(LOTS, st.integers(-300_000, 300_000), st.integers(-300_000, 300_000))
def test_legs_sum_to_the_delta_and_reduce_only_never_adds_exposure(sym, a, b):
    lot = DEFAULT_INSTRUMENTS[sym]
    cur, tgt = _grid(lot, a), _grid(lot, b)
    legs = plan_orders(cur, tgt, lot)
    signed = sum((lg.qty if lg.side == "Buy" else -lg.qty) for lg in legs)
    assert cur + signed == tgt
    pos = cur
    for lg in legs:
        assert 0 < lg.qty <= lot.max_mkt_order_qty and lg.position_before == pos
        nxt = pos + (lg.qty if lg.side == "Buy" else -lg.qty)
        assert lg.position_after == nxt
        if lg.reduce_only:
            assert abs(nxt) < abs(pos) and (nxt == 0 or (nxt > 0) == (pos > 0))
        pos = nxt
    if cur != 0 and tgt != 0 and (cur > 0) != (tgt > 0):          # a flip: close, then open
        assert legs[0].reduce_only and legs[0].kind == "flip_close"
        assert any(lg.position_after == 0 and lg.reduce_only for lg in legs)
        assert legs[-1].kind == "flip_open" and not legs[-1].reduce_only
    elif abs(tgt) < abs(cur):
        assert all(lg.reduce_only for lg in legs)
    else:
        assert not any(lg.reduce_only for lg in legs)


def test_flip_is_two_orders():
    eth = DEFAULT_INSTRUMENTS["ETHUSDT"]
    legs = plan_orders(Decimal("2.5"), Decimal("-1.2"), eth)
    assert [(lg.side, lg.qty, lg.reduce_only, lg.position_after) for lg in legs] == [
        ("Sell", Decimal("2.5"), True, Decimal(0)), ("Sell", Decimal("1.2"), False, Decimal("-1.2"))]


def test_tiny_delta_rules():
    btc = DEFAULT_INSTRUMENTS["BTCUSDT"]
    kw = {"min_notional_usdt": Decimal(10), "min_delta_fraction": 0.002}
    px, eq = Decimal(40_000), Decimal(100_000)
    assert tiny_delta_reason(Decimal("0.1"), Decimal("0.1"), px, eq, btc, **kw) is None
    assert "minOrderQty" in tiny_delta_reason(Decimal("0.1"), Decimal("0.1005"), px, eq, btc, **kw)
    # 0.001 BTC = 40 USDT ≥ 10 USDT but 0.04 % of equity < 0.2 %
    assert "of equity" in tiny_delta_reason(Decimal("0.1"), Decimal("0.101"), px, eq, btc, **kw)
    assert tiny_delta_reason(Decimal("0.1"), Decimal("0.106"), px, eq, btc, **kw) is None
    assert "USDT" in tiny_delta_reason(Decimal(0), Decimal("0.001"), Decimal(5000), Decimal(100), btc, **kw)
    # a full close is never skipped for notional or fraction, only for min qty
    assert tiny_delta_reason(Decimal("0.001"), Decimal(0), px, eq, btc, **kw) is None
    assert tiny_delta_reason(Decimal("0.0004"), Decimal(0), px, eq, btc, **kw) is not None


ids = st.tuples(st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.integers(0, 10**13),
                st.integers(-10_000, 10_000), st.integers(-10_000, 10_000))


@settings(deadline=None)
@given(ids, ids)
def test_intent_ids_are_deterministic_and_name_one_leg(x, y):
    """An intent id is a function of (instrument, bar, position before → after, side): the same
    target from the same position always gives the same id, and two different legs never share
    one (the same leg reached by two plans is the same intent)."""
    lot = DEFAULT_INSTRUMENTS["ETHUSDT"]

    def legs(inst, bar, a, b):
        return {intent_id(inst, bar, lg): (inst, bar, lg.position_before, lg.position_after, lg.side)
                for lg in plan_orders(_grid(lot, a), _grid(lot, b), lot)}
    assume(x[2] != x[3])
    first = legs(*x)
    assert first == legs(*x)                            # same target → same id
    assert len(first) == len(plan_orders(_grid(lot, x[2]), _grid(lot, x[3]), lot))
    second = legs(*y)
    for k in set(first) & set(second):
        assert first[k] == second[k]
    if x[:2] != y[:2]:
        assert not set(first) & set(second)
    # equal quantities written differently give the same id
    lg = plan_orders(Decimal("1.50"), Decimal("3.0"), lot)[0]
    lg2 = plan_orders(Decimal("1.5"), Decimal(3), lot)[0]
    assert intent_id("ETHUSDT", 1, lg) == intent_id("ETHUSDT", 1, lg2)
    assert flatten_intent_id("e1", "ETHUSDT") == flatten_intent_id("e1", "ETHUSDT") != \
        flatten_intent_id("e2", "ETHUSDT")
