"""Instrument specifications and lot filters (Bybit ``/v5/market/instruments-info``, linear).

BTCUSDT and ETHUSDT are Bybit's published linear-perpetual filters (instruments-info snapshot in
ccxt's static test data); SOLUSDT's tick size, qty step, minimum and market maximum come from
public Bybit responses, its limit-order maximum is taken as 10x the market maximum, as for BTC
and ETH. Override them by configuration when Bybit changes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tm_exchange_sim.matching.errors import params_error


@dataclass(frozen=True, slots=True)
class Instrument:
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

    def check_qty(self, qty: Decimal, *, market: bool) -> None:
        """Raise Bybit's 10001 when ``qty`` violates the lot filters."""
        if qty <= 0:
            raise params_error("Qty invalid: must be greater than 0")
        if qty % self.qty_step != 0:
            raise params_error(f"Qty invalid: {qty} is not a multiple of qtyStep "
                               f"{self.qty_step} for {self.symbol}")
        if qty < self.min_order_qty:
            raise params_error("The number of contracts exceeds minimum limit allowed: "
                               f"order_qty {qty} < min_qty {self.min_order_qty}")
        limit = self.max_mkt_order_qty if market else self.max_order_qty
        if qty > limit:
            raise params_error("The number of contracts exceeds maximum limit allowed: "
                               f"too large, order_qty {qty} > max_qty {limit}")

    def check_price(self, price: Decimal) -> None:
        """Raise Bybit's 10001 when ``price`` is off the tick grid or out of range."""
        low = self.min_price if self.min_price is not None else self.tick_size
        if price < low or price > self.max_price:
            raise params_error(f"Price invalid: {price} outside [{low}, {self.max_price}]")
        if price % self.tick_size != 0:
            raise params_error(f"Price invalid: {price} is not a multiple of tickSize "
                               f"{self.tick_size} for {self.symbol}")

    def check_leverage(self, leverage: Decimal) -> None:
        if not self.min_leverage <= leverage <= self.max_leverage or \
                leverage % self.leverage_step != 0:
            raise params_error(f"leverage invalid: {leverage} not in "
                               f"[{self.min_leverage}, {self.max_leverage}]")

    def info(self) -> dict:
        """The instrument as Bybit's instruments-info ``list`` entry."""
        low = self.min_price if self.min_price is not None else self.tick_size
        return {
            "symbol": self.symbol, "contractType": "LinearPerpetual", "status": "Trading",
            "baseCoin": self.base_coin, "quoteCoin": self.quote_coin,
            "launchTime": str(self.launch_time_ms), "deliveryTime": "0", "deliveryFeeRate": "",
            "priceScale": str(self.price_scale),
            "leverageFilter": {"minLeverage": str(self.min_leverage),
                               "maxLeverage": str(self.max_leverage),
                               "leverageStep": str(self.leverage_step)},
            "priceFilter": {"minPrice": str(low), "maxPrice": str(self.max_price),
                            "tickSize": str(self.tick_size)},
            "lotSizeFilter": {"maxOrderQty": str(self.max_order_qty),
                              "minOrderQty": str(self.min_order_qty),
                              "qtyStep": str(self.qty_step),
                              "postOnlyMaxOrderQty": str(self.max_order_qty),
                              "maxMktOrderQty": str(self.max_mkt_order_qty),
                              "minNotionalValue": str(self.min_notional)},
            "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": self.quote_coin,
            "copyTrading": "both", "upperFundingRate": "0.005", "lowerFundingRate": "-0.005",
            "isPreListing": False, "preListingInfo": None,
        }


DEFAULT_INSTRUMENTS: dict[str, Instrument] = {
    "BTCUSDT": Instrument(
        symbol="BTCUSDT", base_coin="BTC", tick_size=Decimal("0.10"), qty_step=Decimal("0.001"),
        min_order_qty=Decimal("0.001"), max_order_qty=Decimal("1190.000"),
        max_mkt_order_qty=Decimal("119.000"), price_scale=2, max_price=Decimal("1999999.80"),
        launch_time_ms=1584230400000),
    "ETHUSDT": Instrument(
        symbol="ETHUSDT", base_coin="ETH", tick_size=Decimal("0.01"), qty_step=Decimal("0.01"),
        min_order_qty=Decimal("0.01"), max_order_qty=Decimal("7240.00"),
        max_mkt_order_qty=Decimal("724.00"), price_scale=2, max_price=Decimal("199999.98"),
        launch_time_ms=1615766400000),
    "SOLUSDT": Instrument(
        symbol="SOLUSDT", base_coin="SOL", tick_size=Decimal("0.010"), qty_step=Decimal("0.1"),
        min_order_qty=Decimal("0.1"), max_order_qty=Decimal("120000.0"),
        max_mkt_order_qty=Decimal("12000.0"), max_leverage=Decimal(50), price_scale=3,
        max_price=Decimal("19999.980"), launch_time_ms=1634256000000),
}
