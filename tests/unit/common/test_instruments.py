"""Instrument specifications live once, in tm_common; the venue's instruments-info fills them."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal

import pytest
from tm_common.instruments import DEFAULT_INSTRUMENTS, InstrumentSpec


def test_defaults_cover_the_default_symbols_with_consistent_filters():
    assert set(DEFAULT_INSTRUMENTS) >= {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    for sym, spec in DEFAULT_INSTRUMENTS.items():
        assert spec.symbol == sym
        assert spec.min_order_qty % spec.qty_step == 0
        assert spec.max_mkt_order_qty <= spec.max_order_qty


@pytest.mark.parametrize("sym", sorted(DEFAULT_INSTRUMENTS))
def test_from_info_reads_what_info_renders(sym):
    spec = DEFAULT_INSTRUMENTS[sym]
    parsed = InstrumentSpec.from_info(spec.info())
    for f in fields(InstrumentSpec):
        if f.name != "min_price":       # None renders as the tick size, Bybit's minPrice
            assert getattr(parsed, f.name) == getattr(spec, f.name), f.name
    assert parsed.min_price == (spec.min_price or spec.tick_size)
    assert InstrumentSpec.from_info(parsed.info()) == parsed


def test_from_info_parses_a_bybit_entry():
    entry = {"symbol": "DOGEUSDT", "contractType": "LinearPerpetual", "status": "Trading",
             "baseCoin": "DOGE", "quoteCoin": "USDT", "launchTime": "1620000000000",
             "priceScale": "5",
             "leverageFilter": {"minLeverage": "1", "maxLeverage": "75.00", "leverageStep": "0.01"},
             "priceFilter": {"minPrice": "0.00001", "maxPrice": "199.99998", "tickSize": "0.00001"},
             "lotSizeFilter": {"maxOrderQty": "7060000", "minOrderQty": "1", "qtyStep": "1",
                               "maxMktOrderQty": "1060000", "minNotionalValue": "5"}}
    spec = InstrumentSpec.from_info(entry)
    assert (spec.symbol, spec.base_coin, spec.qty_step, spec.tick_size, spec.max_leverage) == (
        "DOGEUSDT", "DOGE", Decimal(1), Decimal("0.00001"), Decimal("75.00"))
    assert spec.price_scale == 5 and spec.launch_time_ms == 1620000000000
    assert spec.funding_interval_min == 480            # no fundingInterval: Bybit's default
    assert InstrumentSpec.from_info({**entry, "fundingInterval": 240}).funding_interval_ms == \
        4 * 3600 * 1000
    assert spec.status == "Trading"
    assert InstrumentSpec.from_info({**entry, "status": "Delivering"}).status == "Delivering"
    no_status = {k: v for k, v in entry.items() if k != "status"}   # a recorded answer without
    assert InstrumentSpec.from_info(no_status).status == "Trading"   # it: Bybit's default list
    renders = InstrumentSpec.from_info({**entry, "status": "PreLaunch"}).info()
    assert renders["status"] == "PreLaunch"


@pytest.mark.parametrize("section,name,value,needle", [
    ("lotSizeFilter", "qtyStep", "NaN", "qtyStep is not finite"),
    ("priceFilter", "tickSize", "Infinity", "tickSize is not finite"),
    ("lotSizeFilter", "qtyStep", "0", "qty_step must be > 0"),
    ("lotSizeFilter", "minOrderQty", "-0.001", "min_order_qty must be > 0"),
    ("lotSizeFilter", "maxMktOrderQty", "0", "max_mkt_order_qty must be > 0"),
    ("lotSizeFilter", "minNotionalValue", "-5", "min_notional must be >= 0"),
    (None, "fundingInterval", 0, "fundingInterval must be > 0"),
    (None, "fundingInterval", "8h", "fundingInterval is not a whole number"),
    (None, "fundingInterval", 1.5, "fundingInterval is not a whole number"),
    (None, "deliveryTime", "-1", "deliveryTime must be >= 0"),
    (None, "deliveryTime", "next week", "deliveryTime is not a whole number"),
    (None, "status", "  ", "status must not be blank"),
])
def test_filters_no_order_could_meet_are_refused_by_name(section, name, value, needle):
    """An answer with a NaN step or a zero minimum would size every order wrong (or divide by
    zero): the one parser refuses it, naming the field, and nothing downstream sees it."""
    entry = DEFAULT_INSTRUMENTS["BTCUSDT"].info()
    if section is None:
        entry[name] = value
    else:
        entry[section] = {**entry[section], name: value}
    with pytest.raises(ValueError, match=needle):
        InstrumentSpec.from_info(entry)


def test_a_malformed_entry_is_a_clear_error():
    with pytest.raises(ValueError, match="'XUSDT'.*KeyError.*lotSizeFilter"):
        InstrumentSpec.from_info({"symbol": "XUSDT", "priceFilter": {}, "leverageFilter": {}})
    bad = DEFAULT_INSTRUMENTS["BTCUSDT"].info()
    bad["lotSizeFilter"] = {**bad["lotSizeFilter"], "qtyStep": "lots"}
    with pytest.raises(ValueError, match="BTCUSDT"):
        InstrumentSpec.from_info(bad)


def test_the_simulator_enforces_the_same_specs():
    from tm_exchange_sim.matching.instruments import DEFAULT_INSTRUMENTS as SIM

    for sym, spec in DEFAULT_INSTRUMENTS.items():
        assert {f.name: getattr(SIM[sym], f.name) for f in fields(InstrumentSpec)} == \
            {f.name: getattr(spec, f.name) for f in fields(InstrumentSpec)}


def test_parse_symbols_is_the_one_parser():
    from tm_common.instruments import DEFAULT_SYMBOLS, parse_symbols

    assert parse_symbols(" btcusdt, ETHUSDT,,btcusdt ") == ("BTCUSDT", "ETHUSDT")
    assert parse_symbols(["solusdt", "1000PEPEUSDT"]) == ("SOLUSDT", "1000PEPEUSDT")
    assert parse_symbols(DEFAULT_SYMBOLS) == DEFAULT_SYMBOLS
    with pytest.raises(ValueError, match="'BTC-PERP' is not a USDT perpetual"):
        parse_symbols("BTCUSDT,BTC-PERP")
    with pytest.raises(ValueError, match="no instrument"):
        parse_symbols(" , ")


async def test_find_listed_asks_the_default_answer_then_each_unlisted_status():
    """A venue that lists ``XUSDT`` only under ``Closed`` (as Bybit: only ``Trading`` by
    default): it is found on the third query, after the default one and ``Delivering``; a
    symbol no status lists is None after every status was asked."""
    from tm_common.instruments import UNLISTED_STATUSES, find_listed

    asked: list[dict] = []
    listing = {"Closed": {"XUSDT": "entry"}}

    async def ask(params: dict[str, str]) -> dict[str, str]:
        asked.append(params)
        return listing.get(params.get("status", "Trading"), {})

    assert await find_listed("XUSDT", ask) == "entry"
    assert [p.get("status") for p in asked] == [None, "Delivering", "Closed"]
    assert all(p["category"] == "linear" and p["symbol"] == "XUSDT" for p in asked)
    asked.clear()
    assert await find_listed("YUSDT", ask) is None
    assert [p.get("status") for p in asked] == [None, *UNLISTED_STATUSES]
