"""A seeded random venue: the exchange sim's matching engine on a random walk, trading random
orders, and its executions as the portfolio receives them. Tests compare the portfolio's books
with the venue's wallet through it; it composes two services, so it lives in the apps layer."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from tm_common.events import FundingSettled, OrderFilled
from tm_exchange_sim.matching import (
    DEFAULT_INSTRUMENTS,
    LIMIT,
    MARKET,
    Bar,
    Execution,
    MatchingEngine,
    OrderRequest,
    VenueError,
)
from tm_portfolio.testing import H4_MS, START_PRICES, SYMBOLS, make_fill, open_ms


def execution_event(e: Execution) -> OrderFilled | FundingSettled:
    """A venue execution as the portfolio receives it (trade → fill, funding → payment)."""
    if e.exec_type == "Funding":
        return FundingSettled(instrument=e.symbol, settle_time_ms=e.exec_time_ms,
                              rate=e.fee_rate, position_qty=e.exec_qty, mark_price=e.mark_price,
                              payment=e.exec_fee)
    return make_fill(e.exec_id, e.symbol, e.side, e.exec_qty, e.exec_price, e.exec_fee,
                     e.exec_time_ms)


@dataclass
class RandomVenue:
    """The exchange sim's engine on a seeded random walk, trading random orders.

    ``step(i)`` closes bar ``i`` for every symbol (returns the bars and the funding executions
    settled at its close); ``trade(n)`` places up to ``n`` random orders (market, marketable and
    resting limits, reduce-only) and returns the trade executions. Rejections (margin, reduce-only)
    are skipped, as a venue would reject them. ``resting=False``: limit orders that do not fill
    at once are cancelled, so a bar close settles funding only.
    """

    seed: int = 0
    symbols: tuple[str, ...] = SYMBOLS
    slippage_bps: Decimal = Decimal(2)
    funding_every: int = 2
    resting: bool = True
    engine: MatchingEngine = field(init=False)
    rng: random.Random = field(init=False)
    prices: dict[str, Decimal] = field(init=False)

    def __post_init__(self) -> None:
        from tm_exchange_sim.matching import SlippageModel

        self.rng = random.Random(self.seed)
        inst = {s: DEFAULT_INSTRUMENTS[s] for s in self.symbols}
        self.prices = {s: Decimal(START_PRICES[s]) for s in self.symbols}
        rates = {s: {open_ms(i + 1): Decimal(self.rng.randint(-30, 60)) / Decimal(100_000)
                     for i in range(0, 10_000, self.funding_every)} for s in self.symbols}
        self.engine = MatchingEngine(inst, slippage=SlippageModel(self.slippage_bps),
                                     funding_rates=rates, seed=self.seed)

    def step(self, i: int) -> tuple[dict[str, Bar], list[Execution]]:
        bars = {}
        for s in self.symbols:
            tick = self.engine.instruments[s].tick_size
            p = self.prices[s]
            close = max(tick, (p * (1 + Decimal(self.rng.randint(-300, 300)) / 10_000))
                        .quantize(tick))
            hi = max(p, close) + tick * self.rng.randint(0, 50)
            lo = max(tick, min(p, close) - tick * self.rng.randint(0, 50))
            bars[s] = Bar(open_time_ms=open_ms(i), close_time_ms=open_ms(i) + H4_MS - 1,
                          open=p, high=hi, low=lo, close=close)
            self.prices[s] = close
        self.engine.pop_events()
        self.engine.step(open_ms(i + 1), bars)
        return bars, self._executions()

    def trade(self, n: int) -> list[Execution]:
        eng, rng = self.engine, self.rng
        for _ in range(n):
            s = rng.choice(self.symbols)
            inst = eng.instruments[s]
            last = eng.marks[s]
            notional = Decimal(rng.randint(50, 40_000))
            steps = max(int(notional / last / inst.qty_step), int(inst.min_order_qty / inst.qty_step))
            qty = (inst.qty_step * steps).quantize(inst.qty_step)
            side = rng.choice(("Buy", "Sell"))
            kind = rng.random()
            price = None
            if kind > 0.6:
                off = inst.tick_size * rng.randint(-40, 40)
                price = max(inst.tick_size, (last + off).quantize(inst.tick_size))
            try:
                eng.place_order(OrderRequest(
                    symbol=s, side=side, order_type=LIMIT if price is not None else MARKET,
                    qty=qty, price=price, reduce_only=rng.random() < 0.15))
            except VenueError:
                continue
        if not self.resting:
            for o in eng.open_orders():
                eng.cancel_order(o.symbol, order_id=o.order_id)
        return self._executions()

    def _executions(self) -> list[Execution]:
        return [e for kind, e in self.engine.pop_events() if kind == "execution"]  # type: ignore[misc]

    def wallet(self) -> dict[str, Decimal]:
        return self.engine.wallet()
