"""The ``delisting`` rule: once the venue has scheduled a perpetual's delisting (instruments-info
``deliveryTime``), risk allows no new or larger exposure, and from ``delisting_lead_ms`` before it
the target is zero, so the mesh closes the position itself rather than the venue at its delivery
price. A delisting under way or done (``status`` ``Delivering``, ``Closed``) is flat at once; any
other status than ``Trading`` opens nothing. The schedule and the status reach risk from the
venue's instruments-info or from the executor's ``InstrumentsChanged``."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from tm_common.events import Envelope, InstrumentFilters, InstrumentsChanged
from tm_common.instruments import DEFAULT_INSTRUMENTS
from tm_common.testing.bars import open_ms
from tm_risk.domain.decision import decide_target
from tm_risk.domain.params import H4_MS
from tm_risk.testing import EQUITY, N_BARS, bar_env, make_params, snapshot_env, warm_handler

BAR = N_BARS - 1
DAY_MS = 24 * 3600 * 1000
BTC = DEFAULT_INSTRUMENTS["BTCUSDT"]


def _handler(delivery_ms: int, btc_qty: str | None = None, status: str = "Trading"):
    params = replace(make_params(min_delta_fraction=0.0), instruments={
        **DEFAULT_INSTRUMENTS,
        "BTCUSDT": replace(BTC, delivery_time_ms=delivery_ms, status=status)})
    h, closes = warm_handler(params)
    price = closes["BTCUSDT"][BAR]
    if btc_qty is not None:
        h.process(snapshot_env(BAR, EQUITY, {"BTCUSDT": (btc_qty, price)}))
    return h, price


def _decide(h, fraction: float):
    return decide_target(h.state, h.params, "BTCUSDT", open_ms(BAR), fraction)


def _buys_and_sells(d) -> tuple[Decimal, Decimal]:
    buy = sum((o.leg.qty for o in d.orders if o.leg.side == "Buy"), Decimal(0))
    sell = sum((o.leg.qty for o in d.orders if o.leg.side == "Sell"), Decimal(0))
    return buy, sell


def test_no_schedule_changes_nothing():
    h, _ = _handler(0)
    d = _decide(h, 0.3)
    assert d.code == "approved" and _buys_and_sells(d)[0] > 0
    assert not any("delisting" in n for n in d.notes)


def test_a_scheduled_delisting_allows_no_new_exposure():
    far = open_ms(BAR) + 10 * DAY_MS
    h, _ = _handler(far)                                         # flat: nothing may open
    d = _decide(h, 0.3)
    assert d.code == "hold" and not d.orders and d.fraction == 0.0
    assert any(n.startswith("delisting ") and "no new exposure" in n for n in d.notes)


def test_a_held_position_may_shrink_but_neither_grow_nor_flip():
    far = open_ms(BAR) + 10 * DAY_MS
    h, price = _handler(far, btc_qty="1")                        # long 1 BTC ≈ 0.4 of equity
    held = float(price / EQUITY)
    grow = _decide(h, 0.8)
    assert _buys_and_sells(grow)[0] == 0 and abs(grow.fraction - held) < 1e-12
    shrink = _decide(h, held / 2)
    assert shrink.code == "approved" and _buys_and_sells(shrink) == (0, Decimal("0.5"))
    flip = _decide(h, -0.3)                                      # no short: flat at most
    assert flip.fraction == 0.0 and _buys_and_sells(flip) == (0, Decimal(1))


def test_within_the_lead_the_target_is_flat():
    close_ms = open_ms(BAR) + H4_MS
    h, _ = _handler(close_ms + 12 * 3600 * 1000, btc_qty="1")   # 12 h after this bar's close
    d = _decide(h, 0.5)
    assert d.code == "approved" and _buys_and_sells(d) == (0, Decimal(1))
    assert any(n.endswith(": flat") for n in d.notes)
    assert all("delisting" in o.reason for o in d.orders)
    h2, _ = _handler(close_ms + 12 * 3600 * 1000)               # flat stays flat, silently
    assert _decide(h2, 0.0).code == "hold"


def test_the_schedule_arrives_with_the_executors_instruments_changed():
    h, _ = _handler(0, btc_qty="1")
    at = open_ms(BAR) + H4_MS + 6 * 3600 * 1000
    f = InstrumentFilters(symbol="BTCUSDT", tick_size=BTC.tick_size, qty_step=BTC.qty_step,
                          min_order_qty=BTC.min_order_qty, max_order_qty=BTC.max_order_qty,
                          max_mkt_order_qty=BTC.max_mkt_order_qty, min_notional=BTC.min_notional,
                          delivery_time_ms=at)
    body = InstrumentsChanged(source="executor executor-0", checked_at_ms=open_ms(BAR),
                              instruments=[f], changes={"BTCUSDT": f"delivery_time_ms 0→{at}"})
    h.process(Envelope.root(body, key="instruments:1", correlation_id="instruments:1",
                            ts_event_ns=open_ms(BAR) * 1_000_000,
                            ts_init_ns=open_ms(BAR) * 1_000_000))
    assert _buys_and_sells(_decide(h, 0.5)) == (0, Decimal(1))


@pytest.mark.parametrize("status", ["Delivering", "Closed"])
def test_a_delisting_under_way_is_flat_at_once(status):
    h, _ = _handler(0, btc_qty="1", status=status)              # no deliveryTime given
    d = _decide(h, 0.5)
    assert d.code == "approved" and _buys_and_sells(d) == (0, Decimal(1))
    assert f"venue status {status}: flat" in d.notes
    assert all(o.leg.reduce_only for o in d.orders)


@pytest.mark.parametrize("status", ["PreLaunch", "Settling", "SomethingNew"])
def test_an_instrument_not_trading_opens_nothing_but_may_shrink(status):
    h, _ = _handler(0, status=status)
    d = _decide(h, 0.3)
    assert d.code == "hold" and not d.orders
    assert any(n.startswith(f"venue status {status}: no new exposure") for n in d.notes)
    h, price = _handler(0, btc_qty="1", status=status)
    held = float(price / EQUITY)
    assert _buys_and_sells(_decide(h, 0.8))[0] == 0              # never larger
    assert _buys_and_sells(_decide(h, held / 2)) == (0, Decimal("0.5"))


def test_the_status_arrives_with_the_executors_instruments_changed():
    h, _ = _handler(0, btc_qty="1")
    assert _buys_and_sells(_decide(h, 0.8))[0] > 0               # Trading: it may grow
    f = InstrumentFilters(symbol="BTCUSDT", tick_size=BTC.tick_size, qty_step=BTC.qty_step,
                          min_order_qty=BTC.min_order_qty, max_order_qty=BTC.max_order_qty,
                          max_mkt_order_qty=BTC.max_mkt_order_qty, min_notional=BTC.min_notional,
                          status="Delivering")
    body = InstrumentsChanged(source="executor executor-0", checked_at_ms=open_ms(BAR),
                              instruments=[f], changes={"BTCUSDT": "status Trading→Delivering"})
    h.process(Envelope.root(body, key="instruments:2", correlation_id="instruments:2",
                            ts_event_ns=open_ms(BAR) * 1_000_000,
                            ts_init_ns=open_ms(BAR) * 1_000_000))
    assert _buys_and_sells(_decide(h, 0.8)) == (0, Decimal(1))


@pytest.mark.parametrize("delisted", [
    {"delivery_time_ms": open_ms(N_BARS)},          # the venue's deliveryTime has passed
    {"status": "Closed"},                           # or it says the listing is closed
    {},                                             # control: a silent listed instrument
])
def test_a_delisted_instrument_s_silence_is_not_stale_data(delisted):
    """After a delisting the venue sends no more bars of it. That is not stale data: counted as
    such, the breaker would trip (flattening everything) and never cool down while the symbol
    stays configured. A listed instrument that goes silent still trips it."""
    params = replace(make_params(), instruments={
        **DEFAULT_INSTRUMENTS, "BTCUSDT": replace(BTC, **delisted)})
    h, closes = warm_handler(params)
    for i in range(N_BARS, N_BARS + 4):              # ETH and SOL go on, BTC has ended
        for s in ("ETHUSDT", "SOLUSDT"):
            h.process(bar_env(s, i, closes[s][-1]))
    tripped = h.state.breaker.state.value == "OPEN"
    assert tripped == (not delisted), h.state.breaker
