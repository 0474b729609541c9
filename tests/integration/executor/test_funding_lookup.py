"""The executor publishes every funding settlement the venue books on the account, also after a
flat week: Bybit's ``execution/list`` answers at most 7 days per query, so asking from the newest
settlement published (``startTime`` alone) after a position was flat for longer found nothing,
and every later settlement was lost (``tm_executor.domain.funding``). The venue is the exchange
sim over HTTP (pybit), which keeps Bybit's window; the executor is a real process."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tm_common.bus.streams import MD_BAR

from .conftest import BAR_MS, START_MS, bar_envelope, on_bus, report_bodies, wait_sync

SYMBOL = "BTCUSDT"
FUNDING_MS = 8 * 3600 * 1000


def list_calls(sim) -> int:
    """``/v5/execution/list`` requests the venue answered so far (its ``/metrics``)."""
    text = httpx.get(sim.url + "/metrics", timeout=10).text
    return sum(int(s.value) for f in text_string_to_metric_families(text)
               if f.name == "tm_exchange_sim_requests" for s in f.samples
               if s.name.endswith("_total") and s.labels["path"] == "/v5/execution/list")


def venue_funding_times(sim) -> list[int]:
    """The settlement times of every funding execution the venue booked on ``SYMBOL``."""
    rows = sim.get("/sim/executions")["list"]
    return sorted(int(r["execTime"]) for r in rows
                  if r["execType"] == "Funding" and r["symbol"] == SYMBOL)


def test_funding_after_a_flat_week_is_published(sim, redis_url, namespace, executor_factory):
    executor = executor_factory(sim, redis_url, namespace)
    executor.wait_for(lambda: executor.status()["extra"]["reconciliation"]["runs"] >= 1,
                      what="the start-up reconciliation")
    session = sim.session()

    def trade(side: str) -> None:
        session.place_order(category="linear", symbol=SYMBOL, side=side, orderType="Market",
                            qty="0.01", reduceOnly=side == "Sell")

    def funding_bar(settle_ms: int) -> None:
        """The venue's clock to ``settle_ms``, then the bar closing there on ``md.bar``."""
        steps = (settle_ms - sim.get("/sim/clock")["now_ms"]) // BAR_MS
        if steps:
            sim.advance(steps)
        on_bus(lambda bus: bus.publish(MD_BAR, bar_envelope(SYMBOL, settle_ms - BAR_MS)),
               redis_url, namespace)

    def published() -> list[int]:
        return sorted(b["settle_time_ms"] for t, b in on_bus(report_bodies, redis_url, namespace)
                      if t == "funding.settled")

    trade("Buy")                                      # the venue's time: 04:00
    first = START_MS + FUNDING_MS                     # 2023-01-01 08:00, held through it
    calls = list_calls(sim)
    funding_bar(first)
    wait_sync(lambda: published() == [first], timeout_s=20, what="the first settlement")
    assert list_calls(sim) - calls == 1
    trade("Sell")

    # Flat for 9 days, and the executor saw none of those funding bars (ingest was down): the
    # look-up walks the span since its last one in two windows of at most 7 days.
    flat_end = first + 27 * FUNDING_MS                # 2023-01-10 08:00
    calls = list_calls(sim)
    funding_bar(flat_end)
    wait_sync(lambda: list_calls(sim) - calls == 2, timeout_s=20, what="the walk over 9 days")

    trade("Buy")
    second = flat_end + FUNDING_MS                    # 2023-01-10 16:00, held through it
    calls = list_calls(sim)
    funding_bar(second)
    wait_sync(lambda: published() == [first, second], timeout_s=20,
              what="the settlement after the flat week")
    assert list_calls(sim) - calls == 1               # from a day before the last look-up
    assert published() == venue_funding_times(sim) == [first, second]
