"""An instrument whose funding interval is not 8 h (Bybit lists perpetuals that settle every 1,
2 or 4 h: instruments-info ``fundingInterval``): the venue books every settlement at its own
time, and the executor publishes each on the bar it falls in, with the interval it read from
the venue. Before, the executor asked only on bars closing at 00/08/16 UTC (a settlement at
12:00 waited for 16:00) and the simulator settled only at bar closes (three of every four
hourly settlements were never paid). The venue is the exchange sim over HTTP (pybit), with a
history of its own; the executor is a real process."""

from __future__ import annotations

import pytest
from tm_common.bus.streams import MD_BAR
from tm_common.testing.instrument_history import (
    UNSHIPPED_SYMBOL,
    unshipped_spec,
    write_history,
    write_instrument,
)
from tm_common.testing.sim import QUIET_FAULTS, run_sim

from .conftest import BAR_MS, START_MS, bar_envelope, on_bus, report_bodies, wait_sync

SYMBOL = UNSHIPPED_SYMBOL
HOUR_MS = 3600 * 1000


@pytest.fixture
def hourly_sim(tmp_path):
    """A venue listing only ``SYMBOL``, funding every hour, at 2023-01-01 00:00."""
    history = tmp_path / "history"
    write_history(history, start_ms=START_MS, n_bars=60, funding_every_h=1)
    write_instrument(history, unshipped_spec(funding_interval_min=60))
    with run_sim(tmp_path, TM_SIM_SYMBOLS=f'["{SYMBOL}"]', TM_SIM_HISTORY_DIR=str(history)) as sim:
        sim.post("/sim/faults", {**QUIET_FAULTS, "seed": 7})
        sim.post("/sim/reset", {"start_ms": START_MS, "initial_balance": "100000"})
        yield sim


def test_hourly_funding_is_booked_and_published_bar_by_bar(hourly_sim, redis_url, namespace,
                                                          executor_factory):
    sim = hourly_sim
    info = sim.get("/v5/market/instruments-info", category="linear", symbol=SYMBOL)
    assert info["result"]["list"][0]["fundingInterval"] == 60
    executor = executor_factory(sim, redis_url, namespace, TM_SYMBOLS=SYMBOL)
    executor.wait_for(lambda: executor.status()["extra"]["reconciliation"]["runs"] >= 1,
                      what="the start-up reconciliation")
    sim.session().place_order(category="linear", symbol=SYMBOL, side="Buy", orderType="Market",
                              qty="100")                           # the venue's time: 04:00

    def bar_closing(close_ms: int) -> None:
        sim.advance((close_ms - sim.get("/sim/clock")["now_ms"]) // BAR_MS)
        on_bus(lambda bus: bus.publish(MD_BAR, bar_envelope(SYMBOL, close_ms - BAR_MS)),
               redis_url, namespace)

    def published() -> list[int]:
        return sorted(b["settle_time_ms"] for t, b in on_bus(report_bodies, redis_url, namespace)
                      if t == "funding.settled")

    def venue_times() -> list[int]:
        return sorted(int(r["execTime"]) for r in sim.get("/sim/executions")["list"]
                      if r["execType"] == "Funding")

    for close_ms in (START_MS + 2 * BAR_MS, START_MS + 3 * BAR_MS):  # 08:00, then 12:00
        hours = [close_ms - k * HOUR_MS for k in (3, 2, 1, 0)]
        bar_closing(close_ms)
        assert venue_times()[-4:] == hours, "the venue books each hour at its own time"
        wait_sync(lambda h=hours: published()[-4:] == h, timeout_s=20,
                  what=f"the settlements of the bar closing at {close_ms}")
    assert published() == venue_times() == list(range(START_MS + 5 * HOUR_MS,
                                                       START_MS + 13 * HOUR_MS, HOUR_MS))
