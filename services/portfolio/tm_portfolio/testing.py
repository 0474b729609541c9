"""Test helpers: event factories and a seeded venue (the exchange sim's matching engine) that
trades at random, so tests can compare the portfolio's books with the venue's wallet.

Not imported by the service; tests and benchmarks only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from tm_common.events import BarClosed, Envelope, FundingSettled, OrderFilled
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

H4_MS = 4 * 3600 * 1000
T0_MS = 1_700_000_000_000 // H4_MS * H4_MS
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START_PRICES = {"BTCUSDT": 30000, "ETHUSDT": 2000, "SOLUSDT": 50}


def open_ms(i: int) -> int:
    return T0_MS + i * H4_MS


def close_ns(i: int) -> int:
    """Bar ``i``'s close (= bar ``i + 1``'s open) in ns: the bar event's ``ts_event_ns``."""
    return open_ms(i + 1) * 1_000_000


def bar_env(instrument: str, i: int, close: Decimal | str, *, t_open_ms: int | None = None) -> Envelope:
    """The ``bar.closed`` envelope of bar ``i`` (or opening at ``t_open_ms``) as ingest makes it."""
    t = open_ms(i) if t_open_ms is None else t_open_ms
    c = Decimal(str(close))
    b = BarClosed(instrument=instrument, open_time_ms=t, close_time_ms=t + H4_MS - 1, open=c,
                  high=c, low=c, close=c, volume=Decimal(1), source="replay")
    key = f"{instrument}:{t}"
    return Envelope.root(b, key=key, correlation_id=key, ts_event_ns=(t + H4_MS) * 1_000_000,
                         ts_init_ns=(t + H4_MS) * 1_000_000)


def fill_env(fill: OrderFilled, stamp_ns: int) -> Envelope:
    """A fill as the executor publishes it: stamped with the decision bar's close."""
    return Envelope.root(fill, key=f"exec:{fill.exec_id}", correlation_id=f"{fill.instrument}:x",
                         ts_event_ns=stamp_ns, ts_init_ns=stamp_ns)


def funding_env(f: FundingSettled) -> Envelope:
    ns = f.settle_time_ms * 1_000_000
    return Envelope.root(f, key=f"funding:{f.instrument}:{f.settle_time_ms}",
                         correlation_id=f"{f.instrument}:funding", ts_event_ns=ns, ts_init_ns=ns)


def make_fill(exec_id: str, instrument: str, side: str, qty: str | Decimal, price: str | Decimal,
              fee: str | Decimal = "0", exec_time_ms: int = 0) -> OrderFilled:
    return OrderFilled(intent_id=f"i-{exec_id}", order_link_id=f"l-{exec_id}",
                       order_id=f"o-{exec_id}", exec_id=exec_id, instrument=instrument,
                       side=side, qty=Decimal(str(qty)), price=Decimal(str(price)),  # type: ignore[arg-type]
                       fee=Decimal(str(fee)), exec_time_ms=exec_time_ms)


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
