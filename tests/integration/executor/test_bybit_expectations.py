"""The executor as Bybit expects it (issue 15, part 3), against the sim over HTTP through pybit."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from tm_executor.metrics import ExecutorMetrics
from tm_executor.preflight import Preflight
from tm_executor.venue import VenueClient

from .conftest import (
    executor_settings,
)


def _text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


async def test_not_modified_answers_are_not_exchange_errors(sim, redis_url, namespace):
    # The second preflight finds one-way mode and the leverage already set: the venue answers
    # 110025 and 110043, which mean "done", not a failure.
    registry = CollectorRegistry()
    settings = executor_settings(sim, redis_url, namespace)
    venue = VenueClient(settings, ExecutorMetrics(registry))
    await Preflight(venue, settings).run_once()
    preflight = Preflight(venue, settings)
    await preflight.run_once()
    assert preflight.steps["position_mode"] == "already one-way"
    assert preflight.steps["leverage:BTCUSDT"].startswith("unchanged")
    assert venue.errors == 0
    text = _text(registry)
    assert "110025" not in text and "110043" not in text
    assert "tm_executor_exchange_errors_total{" not in text
