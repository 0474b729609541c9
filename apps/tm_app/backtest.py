"""The in-process backtest: every service's own handler, in one process, on the in-memory bus,
against the in-process venue (the exchange sim's matching engine and request handlers).

The replay is the same :class:`~tm_ingest.sources.replay.ReplaySource` the mesh uses: move the
venue's clock to bar t, publish DVOL known by then and bar t of every instrument, and wait until
every handler is idle. Each service is built by its own ``build(settings, bus=..., registry=...,
venue=...)``, the composition root its process uses; only the transport (``InMemoryBus``), the
venue session and the timers left out (no background task runs here) differ, which is what
makes parity testable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tm_common.bus import Bus, Consumer, InMemoryBus
from tm_common.settings import env_names
from tm_ingest.sources.replay import (
    ReplayProgress,
    ReplaySource,
    history_bars,
    history_dvol,
    history_funding,
)

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


def settings_from(cls, env: Mapping[str, str], **values):
    """``cls`` as a process whose environment also has ``env`` builds it (``values`` win;
    ``os.environ`` is read, never changed). ``env`` holds scalar values, by variable name."""
    given = {f: env[name] for f, name in env_names(cls).items() if name in env}
    return cls(**{**given, **values})


def _values(cfg: RunConfig, name: str, tag: str, namespace: str, **values) -> dict:
    # mode "backtest": no wall-clock timers; db off: the run writes no service tables.
    return {"service_name": name, "consumer_name": f"{name}@{tag}", "symbols": cfg.symbols,
            "database_url": cfg.database_url, "namespace": namespace, "read_block_ms": 1,
            **values}


def build_services(bus: Bus, cfg: RunConfig, venue: InProcessBybit, *, registry: Any = None,
                   ingest: bool = True, tag: str = "backtest", namespace: str = "") -> dict:
    """name → :class:`ServiceParts` of every service, each from its own ``build``, on ``bus``
    with ``registry`` (default: the model registry of ``cfg.database_url``) and the in-process
    venue. Ordered as the drain reads them: portfolio first, since in the mesh its snapshot of
    bar t (one hop from the bar) is out long before the target of bar t (three hops).
    ``ingest=False`` leaves ingest out (a shadow book mirrors production's market events);
    ``tag`` names the consumers (``<service>@<tag>``); ``namespace`` is the services' (where
    their handler state is saved: it must be ``bus``'s prefix on a shared Redis)."""
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry
    from tm_executor.app import build as executor
    from tm_executor.config import ExecutorSettings
    from tm_ingest.app import build as ingest_build
    from tm_ingest.config import IngestSettings
    from tm_portfolio.app import build as portfolio
    from tm_portfolio.config import PortfolioSettings
    from tm_regime.app import build as regime
    from tm_regime.config import RegimeSettings
    from tm_risk.app import build as risk
    from tm_risk.config import RiskSettings
    from tm_signal.app import build as signal
    from tm_signal.config import SignalSettings
    from tm_sizer.app import build as sizer
    from tm_sizer.config import SizerSettings

    if registry is None:
        registry = ModelRegistry(make_engine(cfg.database_url))
    env = cfg.extra_env                # the same TM_ overrides the mesh's processes get
    nodb = {"db_enabled": False}
    specs: list[tuple[str, Callable[..., Any], type[Any], dict[str, Any]]] = [
        ("portfolio", portfolio, PortfolioSettings, {**nodb, "initial_equity": cfg.initial_equity}),
        ("regime", regime, RegimeSettings, nodb),
        ("signal", signal, SignalSettings, {**nodb, "history_dir": cfg.history_dir}),
        ("sizer", sizer, SizerSettings, {**nodb, "mode": "backtest"}),
        ("risk", risk, RiskSettings, {"mode": "backtest"}),
        # the in-process venue only: its endpoint, no private WebSocket (nothing to arm);
        # mode "backtest": its guard ages intents by bar time, never by the wall clock
        ("executor", executor, ExecutorSettings, {"bybit_rest_url": venue.endpoint,
                                                  "ws_enabled": False,
                                                  "order_history_fallback": False,
                                                  "mode": "backtest"}),
    ]
    parts = {name: build(settings_from(cls, env, **_values(cfg, name, tag, namespace, **values)), bus=bus,
                         registry=registry, venue=venue)
             for name, build, cls, values in specs}
    if ingest:
        # The bars' ts_init is 0: the replay stamps no wall time on its inputs.
        parts["ingest"] = ingest_build(settings_from(IngestSettings, env, **_values(
            cfg, "ingest", tag, namespace, mode="off", db_enabled=False, history_dir=cfg.history_dir)),
            bus=bus, venue=venue, clock=lambda: 0)
    return parts


async def run_backtest(cfg: RunConfig, *,
                       on_progress: Callable[[ReplayProgress], None] | None = None,
                       stages: dict[str, dict[str, int]] | None = None) -> RunRecord:
    """Replay ``cfg``'s window through every handler in this process; returns the run record.
    ``stages``: filled with each consumer group's time per stage (``tm_common.bus.stages``)."""
    from tm_exchange_sim.config import ExchangeSimSettings

    # envelopes handed over as they are: no JSON round trip per event in one process
    bus = InMemoryBus(pass_envelopes=True)
    venue = InProcessBybit.from_settings(ExchangeSimSettings(
        sim_symbols=list(cfg.symbols), sim_start_ms=cfg.start_ms,
        sim_initial_balance=cfg.initial_equity, sim_seed=cfg.sim_seed,
        sim_slippage_bps=cfg.slippage_bps,
        sim_history_dir=None if cfg.history_dir is None else Path(cfg.history_dir)))
    services = build_services(bus, cfg, venue)
    consumers = [c for p in services.values() for c in p.consumers]
    for c in consumers:
        # Nothing in this process survives a crash: no state snapshot per entry (a handler
        # failure then stops the run, tm_common.bus.lifecycle.NoSnapshot, instead of undoing).
        c.skip_snapshots()
        await c.start()
    for p in services.values():       # load production models, pass the venue preflight
        await p.warm_up()
    bars = history_bars(cfg.symbols, cfg.start_ms, cfg.end_ms, cfg.history_dir)
    dvol = history_dvol(cfg.start_ms, cfg.end_ms, cfg.history_dir)
    # Funding on md.funding at each settle time, before the bars that close at or after it, as
    # the mesh's replay publishes it: the signal service's funding features equal training's.
    funding = history_funding(cfg.symbols, cfg.start_ms, cfg.end_ms, cfg.history_dir)

    async def step(t: int) -> None:
        venue.advance(t)
    src = ReplaySource(services["ingest"].handlers["publisher"], bars, dvol, funding=funding,
                       probe=InProcessIdle(consumers), before_step=step, on_progress=on_progress)
    await src.run()
    if stages is not None:
        stages.update({c.group: c.stages.as_dict() for c in consumers})
    return await RunRecord.from_bus(bus)


def main_sync(cfg: RunConfig) -> RunRecord:
    return asyncio.run(run_backtest(cfg))
