"""Instrument specifications: a perpetual's lot, price and leverage filters, as Bybit's
``/v5/market/instruments-info`` (category ``linear``) describes them.

Every layer that sizes, checks or simulates an order reads the same :class:`InstrumentSpec`: risk
rounds quantities with it, the exchange simulator enforces it. :meth:`InstrumentSpec.from_info`
parses one entry of the venue's answer, :func:`specs_from_answer` a whole answer;
:meth:`InstrumentSpec.info` renders one.

BTCUSDT and ETHUSDT are Bybit's published linear-perpetual filters (instruments-info snapshot in
ccxt's static test data); SOLUSDT's tick size, qty step, minimum and market maximum come from
public Bybit responses, its limit-order maximum is taken as 10x the market maximum, as for BTC
and ETH. Override them by configuration when Bybit changes them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from tm_common.decimals import NotADecimal, finite_decimal

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
#: Bybit's funding interval of the default symbols, and of an answer that does not give one.
FUNDING_INTERVAL_MIN = 480
#: Bybit's instrument ``status`` values: only ``Trading`` takes orders that open exposure;
#: ``Delivering`` is a delisting under way and ``Closed`` a finished one (the venue closed the
#: positions); ``PreLaunch`` (pre-market) takes no part of this mesh's trading.
TRADING = "Trading"
CLOSED = "Closed"
DELISTED_STATUSES = ("Delivering", CLOSED)
#: What Bybit's instruments-info leaves out unless a query names it in ``status`` (its default
#: answer lists only ``Trading`` linear perpetuals): a traded symbol missing from a default
#: answer is asked for again with each, so a delisting is seen rather than a symbol vanishing.
UNLISTED_STATUSES = (*DELISTED_STATUSES, "PreLaunch")

T = TypeVar("T")


async def find_listed(symbol: str,
                      ask: Callable[[dict[str, str]], Awaitable[Mapping[str, T]]]) -> T | None:
    """``symbol``'s entry in an instruments-info answer, in whatever status: the default query
    first, then one per :data:`UNLISTED_STATUSES`. ``ask(params)`` sends one query and returns
    symbol → entry (a raw row or a parsed spec) of its answer; None when no status lists it.
    The one way the executor, risk, ingest and ``tm paper`` look a traded symbol up."""
    for status in ("", *UNLISTED_STATUSES):
        params = {"category": "linear", "symbol": symbol}
        if status:
            params["status"] = status
        found = await ask(params)
        if symbol in found:
            return found[symbol]
    return None
# A Bybit linear USDT perpetual: base coin letters/digits, then USDT (e.g. 1000PEPEUSDT).
_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}USDT$")


def _text(value: Decimal) -> str:
    """A Decimal as Bybit writes numbers: plain digits, never an exponent (``1E-7``)."""
    return format(value, "f")


def parse_symbols(value: str | Iterable[str]) -> tuple[str, ...]:
    """The one parser of instrument lists (``TM_SYMBOLS``, ``--symbols``, ``--instruments``).

    Accepts ``"btcusdt, ETHUSDT"`` or a sequence; returns upper-case symbols, order kept,
    duplicates dropped.

    Raises:
        ValueError: an empty list, or a name that is not a USDT perpetual symbol (named).
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in items:
        sym = str(raw).strip().upper()
        if not sym:
            continue
        if not _SYMBOL.match(sym):
            raise ValueError(f"{str(raw).strip()!r} is not a USDT perpetual symbol "
                             "(expected e.g. BTCUSDT)")
        if sym not in out:
            out.append(sym)
    if not out:
        raise ValueError("no instrument named (expected e.g. BTCUSDT,ETHUSDT)")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One linear perpetual's filters (Bybit instruments-info field names in snake case)."""

    symbol: str
    base_coin: str
    tick_size: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    max_mkt_order_qty: Decimal
    min_notional: Decimal = Decimal(5)
    min_leverage: Decimal = Decimal(1)
    max_leverage: Decimal = Decimal(100)
    leverage_step: Decimal = Decimal("0.01")
    price_scale: int = 2
    min_price: Decimal | None = None
    max_price: Decimal = Decimal("1999999.80")
    launch_time_ms: int = 0
    quote_coin: str = "USDT"
    #: Minutes between funding settlements (Bybit's ``fundingInterval``: 480 for BTC, ETH and
    #: SOL; 60, 120 or 240 for others, and Bybit may change it while listed).
    funding_interval_min: int = FUNDING_INTERVAL_MIN
    #: When Bybit delists the perpetual (its ``deliveryTime``, ms UTC; 0 = none scheduled): the
    #: venue then closes every position at its delivery price.
    delivery_time_ms: int = 0
    #: The venue's ``status`` (:data:`TRADING` or another; an unknown one reads as not trading).
    status: str = TRADING

    def info(self) -> dict[str, Any]:
        """The instrument as Bybit's instruments-info ``list`` entry."""
        low = self.min_price if self.min_price is not None else self.tick_size
        return {
            "symbol": self.symbol, "contractType": "LinearPerpetual", "status": self.status,
            "baseCoin": self.base_coin, "quoteCoin": self.quote_coin,
            "launchTime": str(self.launch_time_ms), "deliveryTime": str(self.delivery_time_ms),
            "deliveryFeeRate": "",
            "priceScale": str(self.price_scale),
            "leverageFilter": {"minLeverage": _text(self.min_leverage),
                               "maxLeverage": _text(self.max_leverage),
                               "leverageStep": _text(self.leverage_step)},
            "priceFilter": {"minPrice": _text(low), "maxPrice": _text(self.max_price),
                            "tickSize": _text(self.tick_size)},
            "lotSizeFilter": {"maxOrderQty": _text(self.max_order_qty),
                              "minOrderQty": _text(self.min_order_qty),
                              "qtyStep": _text(self.qty_step),
                              "postOnlyMaxOrderQty": _text(self.max_order_qty),
                              "maxMktOrderQty": _text(self.max_mkt_order_qty),
                              "minNotionalValue": _text(self.min_notional)},
            "unifiedMarginTrade": True, "fundingInterval": self.funding_interval_min,
            "settleCoin": self.quote_coin, "copyTrading": "both", "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005",
            "isPreListing": False, "preListingInfo": None,
        }


    @classmethod
    def from_info(cls, entry: Mapping[str, Any]) -> InstrumentSpec:
        """Parse one ``result.list`` entry of ``/v5/market/instruments-info``: the project's one
        parser of it (risk's loader, the simulator's file, the executor's preflight and refresh).

        Raises:
            ValueError: a missing or malformed field, named: not a finite number, a filter
                that must be positive (tick, step, quantities) is not, or a funding interval
                that is not a whole number of minutes > 0.
        """
        try:
            lot, price, lev = entry["lotSizeFilter"], entry["priceFilter"], entry["leverageFilter"]
            max_qty = _number(lot, "maxOrderQty")
            spec = cls(
                symbol=str(entry["symbol"]), base_coin=str(entry["baseCoin"]),
                quote_coin=str(entry.get("quoteCoin") or "USDT"),
                tick_size=_number(price, "tickSize"), qty_step=_number(lot, "qtyStep"),
                min_order_qty=_number(lot, "minOrderQty"), max_order_qty=max_qty,
                max_mkt_order_qty=_number(lot, "maxMktOrderQty", max_qty),
                min_notional=_number(lot, "minNotionalValue", Decimal(5)),
                min_leverage=_number(lev, "minLeverage"), max_leverage=_number(lev, "maxLeverage"),
                leverage_step=_number(lev, "leverageStep"), price_scale=int(entry["priceScale"]),
                min_price=_number(price, "minPrice"), max_price=_number(price, "maxPrice"),
                launch_time_ms=_whole(entry, "launchTime", 0),
                funding_interval_min=_whole(entry, "fundingInterval", FUNDING_INTERVAL_MIN),
                delivery_time_ms=_whole(entry, "deliveryTime", 0),
                status=str(entry.get("status") or TRADING).strip())
            spec.check()
            return spec
        except (KeyError, TypeError, ValueError, ArithmeticError) as e:
            raise ValueError(f"instruments-info entry {entry.get('symbol', '?')!r}: "
                             f"{type(e).__name__}: {e}") from e

    def check(self) -> None:
        """Raises ValueError naming the first filter that no venue order could satisfy."""
        for name in ("tick_size", "qty_step", "min_order_qty", "max_order_qty",
                     "max_mkt_order_qty"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.min_notional < 0:
            raise ValueError(f"min_notional must be >= 0, got {self.min_notional}")
        if self.delivery_time_ms < 0:
            raise ValueError(f"deliveryTime must be >= 0, got {self.delivery_time_ms}")
        if not self.status:
            raise ValueError("status must not be blank")
        if self.funding_interval_min <= 0:
            raise ValueError("fundingInterval must be > 0 minutes, got "
                             f"{self.funding_interval_min}")

    @property
    def funding_interval_ms(self) -> int:
        return self.funding_interval_min * 60_000


def _whole(entry: Mapping[str, Any], name: str, default: int) -> int:
    """``entry[name]`` as a whole number (Bybit sends times as text, ``fundingInterval`` as a
    number); ``default`` when absent or empty."""
    value = entry.get(name)
    if value in (None, ""):
        return default
    text = str(value).strip()
    if isinstance(value, bool) or not isinstance(value, int | str) \
            or not text.removeprefix("-").isdigit():
        raise ValueError(f"{name} is not a whole number: {value!r}")
    return int(text)


def _number(section: Mapping[str, Any], name: str, default: Decimal | None = None) -> Decimal:
    """``section[name]`` as a finite Decimal (``default`` when absent or empty)."""
    value = section.get(name)
    if value in (None, "") and default is not None:
        return default
    if value is None:
        raise KeyError(name)
    try:
        return finite_decimal(value)
    except NotADecimal as e:
        raise ValueError(f"{name} is {e.reason}: {value!r}") from e


#: The filters an order is checked and sized with, the delisting time and the trading status:
#: what ``InstrumentsChanged`` carries (:class:`tm_common.events.InstrumentFilters`).
ORDER_FILTERS = ("tick_size", "qty_step", "min_order_qty", "max_order_qty", "max_mkt_order_qty",
                 "min_notional", "delivery_time_ms", "status")


def spec_changes(old: Mapping[str, Any], new: Mapping[str, Any],
                 fields: Iterable[str] = ORDER_FILTERS,
                 symbols: Iterable[str] | None = None) -> dict[str, str]:
    """symbol → what changed between two symbol → spec (or filters) maps, for the symbols of
    ``new`` (or of ``symbols`` found in ``new``): ``"new"``, or ``"qty_step 0.001→0.01, …"``
    naming each of ``fields`` that differs. The executor's refresh and risk's loader both say
    what changed with it."""
    out: dict[str, str] = {}
    names = tuple(fields)
    for sym in sorted(new) if symbols is None else [s for s in symbols if s in new]:
        before, after = old.get(sym), new[sym]
        if before is None:
            out[sym] = "new"
            continue
        diff = [f"{f} {getattr(before, f)}→{getattr(after, f)}" for f in names
                if getattr(before, f) != getattr(after, f)]
        if diff:
            out[sym] = ", ".join(diff)
    return out


def specs_from_answer(doc: Any, what: str = "instruments-info") -> dict[str, InstrumentSpec]:
    """symbol → spec of every entry of an instruments-info answer: the whole V5 answer, its
    ``result``, or the bare ``list`` (a recorded snapshot of Bybit's answer reads as it is).
    The one parser of instruments-info answers (risk's loader, the simulator's file, the
    executor's refresh).

    Raises:
        ValueError: not that shape, retCode != 0, a category other than ``linear``, or an entry
            that does not parse (named, with ``what``: the file or URL).
    """
    if isinstance(doc, dict) and ("retCode" in doc or "result" in doc):
        if doc.get("retCode", 0) != 0:
            raise ValueError(f"{what}: retCode {doc.get('retCode')}: {doc.get('retMsg')}")
        doc = doc.get("result")
    if isinstance(doc, dict):
        if doc.get("category", "linear") != "linear":
            raise ValueError(f"{what}: category {doc.get('category')!r}, expected 'linear'")
        doc = doc.get("list")
    if not isinstance(doc, list):
        raise ValueError(f"{what}: not an instruments-info answer (expected Bybit's answer, its "
                         "result or its list of instruments)")
    out: dict[str, InstrumentSpec] = {}
    for entry in doc:
        if not isinstance(entry, dict):
            raise ValueError(f"{what}: an instrument entry is not an object")
        spec = InstrumentSpec.from_info(entry)
        out[spec.symbol] = spec
    return out


DEFAULT_INSTRUMENTS: dict[str, InstrumentSpec] = {
    "BTCUSDT": InstrumentSpec(
        symbol="BTCUSDT", base_coin="BTC", tick_size=Decimal("0.10"), qty_step=Decimal("0.001"),
        min_order_qty=Decimal("0.001"), max_order_qty=Decimal("1190.000"),
        max_mkt_order_qty=Decimal("119.000"), price_scale=2, max_price=Decimal("1999999.80"),
        launch_time_ms=1584230400000),
    "ETHUSDT": InstrumentSpec(
        symbol="ETHUSDT", base_coin="ETH", tick_size=Decimal("0.01"), qty_step=Decimal("0.01"),
        min_order_qty=Decimal("0.01"), max_order_qty=Decimal("7240.00"),
        max_mkt_order_qty=Decimal("724.00"), price_scale=2, max_price=Decimal("199999.98"),
        launch_time_ms=1615766400000),
    "SOLUSDT": InstrumentSpec(
        symbol="SOLUSDT", base_coin="SOL", tick_size=Decimal("0.010"), qty_step=Decimal("0.1"),
        min_order_qty=Decimal("0.1"), max_order_qty=Decimal("120000.0"),
        max_mkt_order_qty=Decimal("12000.0"), max_leverage=Decimal(50), price_scale=3,
        max_price=Decimal("19999.980"), launch_time_ms=1634256000000),
}


# ---- filters for a symbol nobody configured ------------------------------------------------
DERIVED_STEP_VALUE_USDT = Decimal(10)        # one qty step is worth 10-100 USDT at the reference
DERIVED_MAX_MKT_VALUE_USDT = Decimal(2_000_000)
DERIVED_MAX_LEVERAGE = Decimal(50)


def _power_of_ten(exponent: int) -> Decimal:
    return Decimal(format(Decimal(1).scaleb(exponent), "f"))


def derived_spec(symbol: str, reference_price: Decimal | str) -> InstrumentSpec:
    """Filters for a USDT perpetual with no published specification, from the magnitude of a
    reference price ``P`` (USDT, > 0; e.g. the first close of its history), shaped like Bybit's:

    - ``tick_size`` = 10^(floor(log10 P) - 5) (5-6 significant digits), ``price_scale`` its
      decimals, ``min_price`` = one tick, ``max_price`` = 2e7 ticks minus two;
    - ``qty_step`` = ``min_order_qty`` = 10^ceil(log10(10 / P)): one step is worth 10-100 USDT;
    - ``max_mkt_order_qty`` = 2,000,000 USDT at ``P`` (rounded down to the step, at least one
      step), ``max_order_qty`` = 10 x that;
    - ``min_notional`` 5 USDT, leverage 1-50 in steps of 0.01.

    BTC (P ~ 40,000), ETH (~ 3,000) and SOL (~ 100) come out with their published tick (BTC,
    ETH) and qty step; the shipped table (:data:`DEFAULT_INSTRUMENTS`) still wins for them.

    Raises:
        ValueError: ``symbol`` is not a USDT perpetual name, or ``P`` is not a positive number.
    """
    (sym,) = parse_symbols([symbol])
    try:
        price = Decimal(str(reference_price))
    except ArithmeticError as e:
        raise ValueError(f"{sym}: reference price {reference_price!r} is not a number") from e
    if not price.is_finite() or price <= 0:
        raise ValueError(f"{sym}: reference price must be a positive number, "
                         f"got {reference_price!r}")
    magnitude = price.adjusted()                          # floor(log10 P)
    tick = _power_of_ten(magnitude - 5)
    price_scale = max(0, 5 - magnitude)
    step_ratio = DERIVED_STEP_VALUE_USDT / price
    step_exp = step_ratio.adjusted() + (0 if step_ratio == _power_of_ten(step_ratio.adjusted())
                                        else 1)          # ceil(log10(10 / P))
    step = _power_of_ten(step_exp)
    max_mkt = Decimal(format(max((DERIVED_MAX_MKT_VALUE_USDT / price // step) * step, step), "f"))
    return InstrumentSpec(
        symbol=sym, base_coin=sym.removesuffix("USDT"), tick_size=tick, qty_step=step,
        min_order_qty=step, max_order_qty=max_mkt * 10, max_mkt_order_qty=max_mkt,
        max_leverage=DERIVED_MAX_LEVERAGE, price_scale=price_scale, min_price=tick,
        max_price=tick * (20_000_000 - 2))
