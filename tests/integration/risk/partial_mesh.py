"""A partial mesh in this process, each service from its own ``build`` on a real Redis bus: the
portfolio, risk and the executor against the in-process venue (the exchange simulator's matching
engine). Shipped bars on ``md.bar`` and scripted targets in lockstep open a book; a test then
drives what it is about (intra-bar marks, the venue acting while the mesh is down)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tm_app.backtest import InProcessIdle
from tm_app.venue import InProcessBybit
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import (
    MD_BAR,
    PORTFOLIO_VALUATION,
    RISK_BREAKER,
    RISK_ORDER,
    SIZING_TARGET,
)
from tm_common.events import Envelope, PositionSized
from tm_common.service.wiring import state_key
from tm_common.testing.redis import delete_namespace
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.serialise import order_dict, wallet_entry
from tm_executor.app import ExecutorService
from tm_executor.config import ExecutorSettings
from tm_ingest.publisher import bar_envelope
from tm_ingest.sources.replay import history_bars
from tm_portfolio.app import build as build_portfolio
from tm_portfolio.config import PortfolioSettings
from tm_risk.app import build as build_risk
from tm_risk.config import RiskSettings

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
BAR_MS = 4 * 3600 * 1000
EQUITY = Decimal(100_000)
LONG = {"BTCUSDT": 0.5, "ETHUSDT": 0.4, "SOLUSDT": 0.3}


def target(sym: str, t: int, fraction: float) -> Envelope:
    body = PositionSized(instrument=sym, bar_time_ms=t, target_fraction=fraction,
                         tier="FULL_RL", reason="scripted")
    key = f"{sym}:{t}"
    return Envelope.root(body, key=key, correlation_id=key,
                         ts_event_ns=(t + BAR_MS) * 1_000_000, ts_init_ns=0)


class Mesh:
    """``start_ms``: the venue's and the book's first bar; ``executor``: settings of the
    executor beyond the mesh's own (``venue_stop_loss``, ...)."""

    def __init__(self, redis_url: str, namespace: str, *, start_ms: int,
                 executor: Mapping[str, Any] | None = None) -> None:
        self.redis_url, self.ns, self.start_ms = redis_url, namespace, start_ms
        self.venue = InProcessBybit.from_settings(ExchangeSimSettings(
            sim_symbols=list(SYMBOLS), sim_start_ms=start_ms, sim_initial_balance=EQUITY,
            sim_seed=42, sim_slippage_bps=Decimal(2)))
        self.common = {"namespace": namespace, "redis_url": redis_url, "symbols": SYMBOLS,
                       "read_block_ms": 1}
        self.buses: list[RedisStreamsBus] = []
        self.executor_service = ExecutorService(ExecutorSettings(
            service_name="executor", consumer_name="executor-0", bybit_rest_url=self.venue.endpoint,
            order_history_fallback=False, **self.common, **(executor or {})), self._bus(),
            venue=self.venue, clock=lambda: 0)
        self.executor = self.executor_service.parts()
        self.bus = self._bus()
        self.build_stateful()

    def _bus(self) -> RedisStreamsBus:
        self.buses.append(RedisStreamsBus(self.redis_url, prefix=self.ns))
        return self.buses[-1]

    def build_stateful(self) -> None:
        """Portfolio and risk from their ``build`` (again: a restart, state from Redis)."""
        self.risk_settings = RiskSettings(service_name="risk", consumer_name="risk-0",
                                          mode="live", var_min_obs=8, hrp_min_obs=8,
                                          daily_loss_limit=0.0, cumulative_loss_limit=0.0,
                                          **self.common)   # the drawdown alone (the limits:
        # tests/component/risk/test_risk_intrabar.py)
        self.risk = build_risk(self.risk_settings, bus=self._bus(), venue=self.venue,
                               clock=lambda: 0)
        self.portfolio_settings = PortfolioSettings(
            service_name="portfolio", consumer_name="portfolio-0", db_enabled=False,
            initial_equity=EQUITY, mode="live", **self.common)
        self.portfolio = build_portfolio(self.portfolio_settings, bus=self._bus(), clock=lambda: 0)

    @property
    def consumers(self):
        return [*self.portfolio.consumers, *self.risk.consumers, *self.executor.consumers]

    async def start(self, *, executor: bool = True) -> None:
        for c in self.consumers if executor else [*self.portfolio.consumers,
                                                   *self.risk.consumers]:
            await c.start()
        await self.risk.warm_up()                 # the venue's lot filters
        if executor:
            await self.executor.warm_up()

    async def restart(self) -> None:
        for c in [*self.portfolio.consumers, *self.risk.consumers]:
            c.stop()
        self.build_stateful()
        await self.start(executor=False)

    async def idle(self) -> None:
        """Drain every consumer until none has work (the backtest's lockstep probe)."""
        await InProcessIdle(self.consumers).wait_done(0)

    async def bars_in_lockstep(self, first_ms: int, last_ms: int,
                               targets: Mapping[str, float] | None = None) -> list[int]:
        """The shipped bars opening in ``[first_ms, last_ms]`` on ``md.bar``, one bar time at a
        time (the venue's clock moved to it first), each followed by ``targets`` when given;
        returns the bar times."""
        bars = history_bars(SYMBOLS, first_ms, last_ms)
        self.bars = [*getattr(self, "bars", []), *bars]
        times = sorted({b.open_time_ms for b in bars})
        for t in times:
            self.venue.advance(t)
            for b in sorted((b for b in bars if b.open_time_ms == t), key=lambda b: b.instrument):
                await self.bus.publish(MD_BAR, bar_envelope(b, 0))
            await self.idle()
            for sym, fraction in (targets or {}).items():
                await self.bus.publish(SIZING_TARGET, target(sym, t, fraction))
            await self.idle()
        return times

    async def open_book(self, bars: int, targets: Mapping[str, float] = LONG) -> int:
        """``bars`` lockstep bars from the start with ``targets``; the last bar's open time."""
        return (await self.bars_in_lockstep(self.start_ms, self.start_ms + (bars - 1) * BAR_MS,
                                            targets))[-1]

    def close_of(self, sym: str, t: int) -> Decimal:
        return next(b.close for b in self.bars if b.instrument == sym and b.open_time_ms == t)

    async def bodies(self, stream: str) -> list:
        return [Envelope.from_fields(f).body for _, f in await self.bus.entries(stream, 10**6)]

    async def result(self) -> dict:
        eng = self.venue.state.engine
        return {
            "orders": [(f["event_id"], f["ts_event_ns"], f["body"])
                       for _, f in await self.bus.entries(RISK_ORDER)],
            "breaker": [f["body"] for _, f in await self.bus.entries(RISK_BREAKER)],
            "valuations": [f["body"] for _, f in await self.bus.entries(PORTFOLIO_VALUATION)],
            "venue_orders": sorted((o["orderLinkId"], o["side"], o["qty"], o["avgPrice"])
                                   for o in map(order_dict, eng.orders.values())),
            "venue_equity": wallet_entry(eng)["totalEquity"],
            "risk_state": await self.bus.load_state(state_key(self.risk_settings)),
            "portfolio_state": json.loads(await self.bus.load_state(
                state_key(self.portfolio_settings))),
        }

    async def close(self) -> None:
        for b in self.buses:
            await b.close()
        delete_namespace(self.redis_url, self.ns)
