"""Intra-bar protection on the real Redis: a mark drop between two 4h closes trips the breaker
then, and the book is flat before the next close.

A partial mesh in this process, each service from its own ``build`` on a Redis bus: the
portfolio, risk and the executor (against the in-process venue: the exchange simulator's
matching engine). Shipped bars on ``md.bar`` and scripted long targets in lockstep open a book;
then, inside the next bar, ticker marks on ``md.mark`` (as ingest's poller publishes them): a 1 %
dip values the book and changes nothing, a 12 % drop trips the breaker (drawdown, "intra-bar"
in its reason) at the mark's time, risk flattens every position, the executor closes them on the
venue, all before the next bar is published. The next bar's snapshot is flat and nothing is
flattened twice. A restart of the portfolio and risk between the two marks (new builds on the
same namespace: state from Redis) gives the same orders, breaker events, venue orders and saved
states; a mark older than the last one is ignored, after the restart too (it would trip).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
import tm_risk.commands  # noqa: F401 - registers breaker.command_issued for decoding
from tm_app.backtest import InProcessIdle
from tm_app.venue import InProcessBybit
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import (
    MD_BAR,
    MD_MARK,
    PORTFOLIO_SNAPSHOT,
    PORTFOLIO_VALUATION,
    RISK_BREAKER,
    RISK_ORDER,
    SIZING_TARGET,
)
from tm_common.events import BarClosed, Envelope, MarkUpdated, PositionSized
from tm_common.service.wiring import state_key
from tm_common.testing.redis import delete_namespace
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.serialise import order_dict, wallet_entry
from tm_executor.app import build as build_executor
from tm_executor.config import ExecutorSettings
from tm_ingest.publisher import bar_envelope, mark_envelope
from tm_ingest.sources.replay import history_bars
from tm_portfolio.app import build as build_portfolio
from tm_portfolio.config import PortfolioSettings
from tm_risk.app import build as build_risk
from tm_risk.config import RiskSettings

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START_MS = 1_735_689_600_000            # 2025-01-01 00:00 UTC
BAR_MS = 4 * 3600 * 1000
BARS = 14
EQUITY = Decimal(100_000)
LONG = {"BTCUSDT": 0.5, "ETHUSDT": 0.4, "SOLUSDT": 0.3}


def _target(sym: str, t: int) -> Envelope:
    body = PositionSized(instrument=sym, bar_time_ms=t, target_fraction=LONG[sym],
                         tier="FULL_RL", reason="scripted")
    key = f"{sym}:{t}"
    return Envelope.root(body, key=key, correlation_id=key,
                         ts_event_ns=(t + BAR_MS) * 1_000_000, ts_init_ns=0)


class Mesh:
    def __init__(self, redis_url: str, namespace: str) -> None:
        self.redis_url, self.ns = redis_url, namespace
        self.venue = InProcessBybit.from_settings(ExchangeSimSettings(
            sim_symbols=list(SYMBOLS), sim_start_ms=START_MS, sim_initial_balance=EQUITY,
            sim_seed=42, sim_slippage_bps=Decimal(2)))
        self.common = {"namespace": namespace, "redis_url": redis_url, "symbols": SYMBOLS,
                       "read_block_ms": 1}
        self.buses: list[RedisStreamsBus] = []
        self.executor = build_executor(ExecutorSettings(
            service_name="executor", consumer_name="executor-0", bybit_rest_url=self.venue.endpoint,
            order_history_fallback=False, **self.common), bus=self._bus(), venue=self.venue,
            clock=lambda: 0)
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

    async def open_book(self) -> int:
        """Lockstep bars and long targets; returns the last bar's open time."""
        bars = history_bars(SYMBOLS, START_MS, START_MS + (BARS - 1) * BAR_MS)
        self.bars = bars
        times = sorted({b.open_time_ms for b in bars})
        for t in times:
            self.venue.advance(t)
            for b in sorted((b for b in bars if b.open_time_ms == t), key=lambda b: b.instrument):
                await self.bus.publish(MD_BAR, bar_envelope(b, 0))
            await self.idle()
            for sym in SYMBOLS:
                await self.bus.publish(SIZING_TARGET, _target(sym, t))
            await self.idle()
        return times[-1]

    def close_of(self, sym: str, t: int) -> Decimal:
        return next(b.close for b in self.bars if b.instrument == sym and b.open_time_ms == t)

    async def marks(self, at_ms: int, factor: str, syms=SYMBOLS, t: int = 0) -> None:
        for i, sym in enumerate(syms):
            price = (self.close_of(sym, t) * Decimal(factor)).quantize(Decimal("0.01"))
            m = MarkUpdated(instrument=sym, at_ms=at_ms + i, mark_price=price, last_price=price)
            await self.bus.publish(MD_MARK, mark_envelope(m, 0))
        await self.idle()

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


async def _scenario(redis_url: str, restart: bool) -> tuple[dict, dict]:
    mesh = Mesh(redis_url, f"tmtest:{uuid.uuid4().hex[:8]}:intrabar:")
    seen: dict = {}
    try:
        await mesh.start()
        last = await mesh.open_book()
        close = last + BAR_MS                            # the newest bar's close
        positions = {s: p.size for s, p in mesh.venue.state.engine.account.positions.items()
                     if p.size}
        seen["positions"] = positions
        seen["orders_before"] = len(await mesh.bodies(RISK_ORDER))
        await mesh.marks(close + 60_000, "0.99", t=last)            # a 1 % dip: valued only
        seen["after_dip"] = (len(await mesh.bodies(PORTFOLIO_VALUATION)),
                             await mesh.bodies(RISK_BREAKER))
        if restart:
            await mesh.restart()
        # older than the dip's BTC mark: ignored by the book (restored or not; else a trip)
        await mesh.marks(close + 30_000, "0.40", syms=("BTCUSDT",), t=last)
        seen["stale_ignored"] = await mesh.bodies(RISK_BREAKER) == []
        await mesh.marks(close + 120_000, "0.88", t=last)           # a 12 % drop: trips
        seen["breaker"] = await mesh.bodies(RISK_BREAKER)
        seen["venue_after_trip"] = {s: p.size for s, p in
                                    mesh.venue.state.engine.account.positions.items() if p.size}
        # the next bar: its snapshot shows the book flat and nothing is flattened again
        t = close
        mesh.venue.advance(t)
        for sym in SYMBOLS:
            c = mesh.close_of(sym, last) * Decimal("0.88")
            await mesh.bus.publish(MD_BAR, bar_envelope(BarClosed(
                instrument=sym, open_time_ms=t, close_time_ms=t + BAR_MS - 1, open=c, high=c,
                low=c, close=c, volume=Decimal(1), source="replay"), 0))
        await mesh.idle()
        seen["next_snapshot"] = (await mesh.bodies(PORTFOLIO_SNAPSHOT))[-1]
        return await mesh.result(), seen
    finally:
        await mesh.close()


@pytest.mark.timeout(180)
async def test_an_intra_bar_drop_trips_flattens_before_the_next_close_and_a_restart_keeps_it(
        redis_url):
    clean, seen = await _scenario(redis_url, restart=False)
    assert seen["stale_ignored"]
    assert set(seen["positions"]) == set(SYMBOLS)                   # the book was long
    n_vals, breaker = seen["after_dip"]
    assert n_vals == 3 and breaker == []                            # valued, under the limit
    (b,) = seen["breaker"]
    last = START_MS + (BARS - 1) * BAR_MS
    close = last + BAR_MS
    assert (b.from_state, b.to_state, b.trigger) == ("CLOSED", "OPEN", "drawdown")
    assert "intra-bar drawdown" in b.reason and b.at_ms == close + 120_000
    assert b.at_ms < close + BAR_MS                                 # before the next close
    assert seen["venue_after_trip"] == {}                           # flat on the venue
    orders = [json.loads(o[2]) for o in clean["orders"]][seen["orders_before"]:]
    assert sorted((o["instrument"], o["reduce_only"], Decimal(o["target_qty"])) for o in orders) \
        == [(s, True, Decimal(0)) for s in SYMBOLS]                 # one flatten each, no more
    snap = seen["next_snapshot"]
    assert snap.bar_time_ms == close and snap.positions == ()      # the snapshot is flat

    restarted, seen_r = await _scenario(redis_url, restart=True)
    assert seen_r["stale_ignored"]
    assert restarted == clean
