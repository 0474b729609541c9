"""Shared by the shadow tests: a registry with two refused signal candidates, the test window,
and production's market events published into a namespace as its replay publishes them."""

from __future__ import annotations

import pytest
from tm_app.backtest import InProcessIdle, RunConfig, build_services
from tm_app.venue import InProcessBybit
from tm_common.bus.redis import RedisStreamsBus
from tm_common.history import load_bars
from tm_common.models.registry import ModelRegistry
from tm_common.testing.databases import migrated_engine
from tm_ingest.sources.replay import ReplaySource, history_bars, history_dvol, history_funding
from tm_signal.testing import register_signal_versions

START, N = 5000, 90
# A test configuration under which the test model's window trades (as the e2e parity test's).
TRADING_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.02", "TM_SIZER_BLENDED_CONFIDENCE": "0.08",
               "TM_SIZER_KELLY_MIN_EACH": "1", "TM_SIZER_KELLY_PRIOR_B": "1.5"}


@pytest.fixture
async def registry_url(tmp_path):
    """The candidates registered (a second apart) before the test window: all of it lies after
    them, so a paper or live book's record covers the whole window as forward evidence."""
    bars = load_bars("BTCUSDT")
    url = f"sqlite+aiosqlite:///{tmp_path}/tm.db"
    ticks = iter(range(bars[START - 1].open_time_ms, bars[START].open_time_ms, 1000))
    async with migrated_engine(url) as engine:
        await register_signal_versions(ModelRegistry(engine, clock_ms=lambda: next(ticks)),
                                       first_bar_ms=bars[START - 250].open_time_ms,
                                       metrics={"gate_passed": False, "why": "test candidate"})
    return url


def window() -> tuple[int, int]:
    bars = load_bars("BTCUSDT")
    return bars[START].open_time_ms, bars[START + N - 1].open_time_ms


async def publish_market(redis_url: str, prefix: str, cfg: RunConfig) -> None:
    """What production's ingest publishes in a replay of ``cfg``'s window, into ``prefix``."""
    bus = RedisStreamsBus(redis_url, prefix=prefix)
    parts = build_services(bus, cfg, InProcessBybit.from_settings(), registry=object(),
                           namespace=prefix)
    await ReplaySource(parts["ingest"].handlers["publisher"],
                       history_bars(cfg.symbols, cfg.start_ms, cfg.end_ms),
                       history_dvol(cfg.start_ms, cfg.end_ms),
                       funding=history_funding(cfg.symbols, cfg.start_ms, cfg.end_ms),
                       probe=InProcessIdle([])).run()
    await bus.close()


