"""A complete, minimal service: echo every event of one stream to another.

It is the template for real services (settings → bus → handler → consumer → parts, in one
``build``; ``serve`` runs it) and the process the service-base integration tests run::

    TM_SERVICE_NAME=echo TM_REDIS_URL=redis://127.0.0.1:6379/0 TM_HTTP_PORT=8080 \\
        python -m tm_common.service.example

Each input is re-emitted unchanged (same body) to ``example_out_stream``; the output envelope is
caused by the input, so its ``event_id`` is deterministic and a duplicate would be visible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI
from pydantic import Field

from tm_common.bus.handler import Emit
from tm_common.bus.protocol import Bus
from tm_common.events.base import Envelope
from tm_common.service.app import create_app, serve
from tm_common.service.parts import WALL_CLOCK, Clock, ServiceParts
from tm_common.service.runtime import ServiceRuntime
from tm_common.service.wiring import make_bus, make_consumer
from tm_common.settings import CommonSettings

log = structlog.get_logger("tm.example")


class ExampleSettings(CommonSettings):
    """Settings of the echo service (``TM_`` prefix, like every service)."""

    service_name: str = "example"
    example_in_stream: str = "example.in"
    example_out_stream: str = "example.out"
    example_delay_ms: float = Field(default=0.0, ge=0, description="simulated work per event, ms")
    lag_poll_interval_s: float = Field(default=5.0, gt=0, description="lag/pending refresh, s")


class EchoHandler:
    """Emits the input body unchanged to ``out_stream``. ``delay_s`` simulates work."""

    def __init__(self, out_stream: str, delay_s: float = 0.0) -> None:
        self.out_stream, self.delay_s = out_stream, delay_s

    async def handle(self, event: Envelope) -> Sequence[Emit]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        log.info("example.echoed", event_id=event.event_id)   # correlation_id comes bound
        return [Emit(self.out_stream, event.body)]


def build(settings: ExampleSettings, *, bus: Bus, registry: Any = None, venue: Any = None,
          clock: Clock = WALL_CLOCK) -> ServiceParts:
    """The service's wiring: one consumer of ``example_in_stream`` (no models, no venue)."""
    handler = EchoHandler(settings.example_out_stream, settings.example_delay_ms / 1000)
    consumer = make_consumer(settings, bus, handler, [settings.example_in_stream], clock=clock)
    return ServiceParts(settings, bus, consumers=(consumer,), handlers={"handler": handler},
                        status_extra=lambda: {"out_stream": settings.example_out_stream},
                        lag_poll_interval_s=settings.lag_poll_interval_s)


def build_runtime(settings: ExampleSettings) -> ServiceRuntime:
    """The runtime of :func:`build` on a Redis bus."""
    return build(settings, bus=make_bus(settings)).runtime()


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory tm_common.service.example:app_from_env``."""
    return create_app(build_runtime(ExampleSettings()))


def main() -> int:
    return serve(build, ExampleSettings())


if __name__ == "__main__":
    raise SystemExit(main())
