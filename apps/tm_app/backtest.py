"""The in-process backtest: every service's own handler, in one process, on the in-memory bus,
against the in-process venue (the exchange sim's matching engine and request handlers).

The replay is the same :class:`~tm_ingest.sources.replay.ReplaySource` the mesh uses: move the
venue's clock to bar t, publish DVOL known by then and bar t of every instrument, and wait until
every handler is idle. Services are built with their production classes and settings; only the
transport (``InMemoryBus``) and the venue session differ, which is what makes parity testable.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.streams import MD_BAR, MD_DVOL, MODELS_PROMOTED
from tm_common.metrics import ServiceMetrics
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.replay import ReplayProgress, ReplaySource, history_bars, history_dvol

from tm_app.record import RunRecord
from tm_app.venue import InProcessBybit

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@dataclass(frozen=True)
class RunConfig:
    """What a run replays and with what money. Shared by the mesh and the backtest."""

    start_ms: int
    end_ms: int
    database_url: str                      # the model registry (and history) lives here
    symbols: tuple[str, ...] = SYMBOLS
    initial_equity: Decimal = Decimal(100000)
    sim_seed: int = 42
    slippage_bps: Decimal = Decimal(2)
    history_dir: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


class _InProcessVenueClient:
    """Builds the executor's own VenueClient with the in-process session."""

    @staticmethod
    def make(settings, venue: InProcessBybit, metrics):
        from tm_executor.venue import VenueClient

        class InProcessVenueClient(VenueClient):
            blocking = False

            def _session(self):
                return venue
        return InProcessVenueClient(settings, metrics)


class InProcessIdle:
    """Lockstep probe for the in-process run: drain every consumer until none has work."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self.consumers = list(consumers)

    async def wait_done(self, bar_time_ms: int) -> None:
        """Round-robin, one read per consumer per round: work moves hop by hop, as it does
        through the mesh (a one-hop output is out before a three-hop one)."""
        while True:
            n = 0
            for c in self.consumers:
                n += await c.step(block_ms=None)
            if n == 0 and not any(c._pending_dirty for c in self.consumers):
                return


def _common(cfg: RunConfig, name: str) -> dict:
    return {"service_name": name, "symbols": cfg.symbols, "database_url": cfg.database_url}


def build_consumers(bus: InMemoryBus, cfg: RunConfig, venue: InProcessBybit):
    """Every service's handler in a real :class:`Consumer` on ``bus``; returns (consumers,
    executor service)."""
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry

    db = make_engine(cfg.database_url)
    registry = ModelRegistry(db)
    saved = {k: os.environ.get(k) for k in cfg.extra_env}
    os.environ.update(cfg.extra_env)          # the same TM_ overrides the mesh's processes get
    try:
        return _build(bus, cfg, venue, db, registry)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _build(bus, cfg, venue, db, registry):
    from tm_executor.app import INPUTS as EXECUTOR_INPUTS
    from tm_executor.app import ExecutorService
    from tm_executor.config import ExecutorSettings
    from tm_portfolio.app import INPUTS as PORTFOLIO_INPUTS
    from tm_portfolio.config import PortfolioSettings
    from tm_portfolio.handler import PortfolioHandler
    from tm_regime.config import RegimeSettings
    from tm_regime.domain.engine import RegimeConfig, RegimeEngine
    from tm_regime.handler import RegimeHandler
    from tm_regime.models import RegimeModels
    from tm_risk.app import INPUTS as RISK_INPUTS
    from tm_risk.config import RiskSettings
    from tm_risk.handler import RiskHandler
    from tm_signal.app import engine_config
    from tm_signal.config import SignalSettings
    from tm_signal.domain.engine import SignalEngine
    from tm_signal.handler import SignalHandler
    from tm_signal.models import SignalModels
    from tm_signal.repository import BarHistory
    from tm_sizer.app import INPUTS as SIZER_INPUTS
    from tm_sizer.config import SizerSettings
    from tm_sizer.domain.engine import SizerEngine
    from tm_sizer.handler import SizerHandler
    from tm_sizer.policies import SizerPolicies

    rs = RegimeSettings(**_common(cfg, "regime"))
    regime = RegimeHandler(RegimeEngine(RegimeConfig(symbols=rs.symbols, no_model_kelly=rs.no_model_kelly,
                                                     replay_bars=rs.replay_bars)),
                           RegimeModels(registry))
    ss = SignalSettings(**_common(cfg, "signal"), history_dir=cfg.history_dir)
    signal = SignalHandler(SignalEngine(engine_config(ss)), SignalModels(registry),
                           history=BarHistory(db, ss.history_dir),
                           dvol_currency=ss.dvol_currency.upper())
    zs = SizerSettings(**_common(cfg, "sizer"))
    sizer = SizerHandler(SizerEngine(zs.params()), SizerPolicies(registry))
    ks = RiskSettings(**_common(cfg, "risk"))
    risk = RiskHandler(ks.params())
    es = ExecutorSettings(**_common(cfg, "executor"), bybit_rest_url="inprocess://venue",
                          order_history_fallback=False)
    ex = ExecutorService.__new__(ExecutorService)
    _init_executor(ex, es, bus, venue)
    ps = PortfolioSettings(**_common(cfg, "portfolio"), initial_equity=cfg.initial_equity)
    portfolio = PortfolioHandler(ps.symbols, ps.initial_equity, periods_per_year=ps.periods_per_year,
                                 interval_ms=ps.interval_min * 60_000)
    # Portfolio first: in the mesh its snapshot of bar t (one hop from the bar) is out long
    # before the target of bar t (three hops); each round of the in-process drain keeps that.
    specs = [("portfolio", portfolio, list(PORTFOLIO_INPUTS)),
             ("regime", regime, [MD_BAR, MODELS_PROMOTED]),
             ("signal", signal, [MD_BAR, MD_DVOL, MODELS_PROMOTED]),
             ("sizer", sizer, list(SIZER_INPUTS)),
             ("risk", risk, list(RISK_INPUTS)),
             ("executor", ex.handler, list(EXECUTOR_INPUTS))]
    consumers = [Consumer(bus, h, group=name, consumer=f"{name}@backtest", streams=streams,
                          state_key=f"state:{name}", block_ms=1)
                 for name, h, streams in specs]
    return consumers, ex, [regime, signal, sizer]


def _init_executor(ex, settings, bus, venue) -> None:
    """ExecutorService's parts with the in-process venue session (no WS, no poller)."""
    from tm_executor.handler import ExecutorHandler
    from tm_executor.metrics import ExecutorMetrics
    from tm_executor.placement import OrderPlacer
    from tm_executor.preflight import Preflight

    ex.settings = settings
    ex.bus = bus
    ex.metrics = ExecutorMetrics(ServiceMetrics("executor", settings.version).registry)
    ex.venue = _InProcessVenueClient.make(settings, venue, ex.metrics)
    ex.preflight = Preflight(ex.venue, settings, ex.metrics)
    ex.placer = OrderPlacer(ex.venue, settings)
    ex.handler = ExecutorHandler(settings, ex.placer, ex.preflight, ex.metrics)


async def run_backtest(cfg: RunConfig, *,
                       on_progress: Callable[[ReplayProgress], None] | None = None) -> RunRecord:
    """Replay ``cfg``'s window through every handler in this process; returns the run record."""
    from tm_exchange_sim.config import ExchangeSimSettings

    bus = InMemoryBus()
    venue = InProcessBybit.from_settings(ExchangeSimSettings(
        sim_symbols=list(cfg.symbols), sim_start_ms=cfg.start_ms,
        sim_initial_balance=cfg.initial_equity, sim_seed=cfg.sim_seed,
        sim_slippage_bps=cfg.slippage_bps, sim_history_dir=cfg.history_dir))
    consumers, ex, preloaded = build_consumers(bus, cfg, venue)
    for c in consumers:
        await c.start()
    for h in preloaded:                       # load production models before the first bar
        await h.prefetch()
    await ex.preflight.run(asyncio.Event())     # returns once passed (the venue is local)
    if not ex.preflight.passed:
        raise RuntimeError(f"executor preflight failed: {ex.preflight.reason}")
    publisher = BarPublisher(bus, "state:ingest", clock=lambda: 0)
    bars = history_bars(cfg.symbols, cfg.start_ms, cfg.end_ms, cfg.history_dir)
    dvol = history_dvol(cfg.start_ms, cfg.end_ms, cfg.history_dir)

    async def step(t: int) -> None:
        venue.advance(t)
    src = ReplaySource(publisher, bars, dvol, probe=InProcessIdle(consumers), before_step=step,
                       on_progress=on_progress)
    await src.run()
    return await RunRecord.from_bus(bus)


def main_sync(cfg: RunConfig) -> RunRecord:
    return asyncio.run(run_backtest(cfg))
