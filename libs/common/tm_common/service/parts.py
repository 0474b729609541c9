"""What a service's ``build`` returns: its parts, for the server, the backtest and the tests.

Every service's ``app.py`` exposes one composition root::

    def build(settings, *, bus, registry=None, venue=None, clock=time.time_ns) -> ServiceParts

``bus``: the transport (Redis in a process, ``InMemoryBus`` in the backtest and the tests).
``registry``: the model registry; ``None`` = the service's own (from its database, if enabled).
``venue``: an in-process venue session (only the executor uses one); ``None`` = the configured
URL. ``clock``: ``() -> int`` nanoseconds, the time stamped on what the service emits.

The server turns the parts into a :class:`ServiceRuntime` (:meth:`ServiceParts.runtime`) and an
app with ``routers``; an in-process driver (the backtest, a component test) awaits ``warmup``
once, starts ``consumers`` and steps them itself, and reads the unwrapped ``handlers``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tm_common.bus.consumer import Consumer
from tm_common.bus.protocol import Bus
from tm_common.metrics import ServiceMetrics
from tm_common.service.runtime import Background, ReadyCheck, ServiceRuntime

Clock = Callable[[], int]
"""Wall or event time in nanoseconds since the epoch."""

WALL_CLOCK: Clock = time.time_ns


@dataclass(frozen=True)
class ServiceParts:
    """A built service. Nothing is started: the bus connects lazily, tasks start in the runtime.

    ``handlers``: role → the unwrapped object the consumers drive (``"handler"``; ingest's
    ``"publisher"``; the executor's ``"preflight"``), for in-process drivers and tests.
    ``routers``: FastAPI routers served beside ``/healthz``, ``/readyz``, ``/metrics``,
    ``/status``. ``background``: name → ``async fn(stop_event)``, run only by the server.
    ``warmup``: one-shot start-up work (load models, venue preflight) that an in-process driver
    awaits before the first event; the server does the same work in ``background``, with retries.
    """

    settings: Any
    bus: Bus
    consumers: tuple[Consumer, ...] = ()
    handlers: Mapping[str, Any] = field(default_factory=dict)
    routers: tuple[Any, ...] = ()
    background: Mapping[str, Background] = field(default_factory=dict)
    warmup: tuple[Callable[[], Awaitable[None]], ...] = ()
    ready_checks: Mapping[str, ReadyCheck] = field(default_factory=dict)
    status_extra: Callable[[], Mapping[str, Any]] | None = None
    metrics: ServiceMetrics | None = None
    lag_poll_interval_s: float = 5.0

    @property
    def handler(self) -> Any:
        """The main handler (``handlers["handler"]``)."""
        return self.handlers["handler"]

    def runtime(self) -> ServiceRuntime:
        """A :class:`ServiceRuntime` over these parts (consumers, background, checks, status)."""
        return ServiceRuntime(
            self.settings, self.bus, consumers=self.consumers, metrics=self.metrics,
            ready_checks=self.ready_checks, status_extra=self.status_extra,
            background=self.background, lag_poll_interval_s=self.lag_poll_interval_s)

    async def warm_up(self) -> None:
        """Await every ``warmup`` step once, in order (in-process drivers)."""
        for step in self.warmup:
            await step()


class ServiceAssembly:
    """A service built as an object (its parts as attributes), for the runtime and for tests that
    drive the parts directly: ``settings``, ``bus`` (``None``: a Redis bus from the settings)
    and ``service_metrics`` (``None``: new ones); a subclass builds the rest and returns it from
    :meth:`parts`."""

    def __init__(self, settings: Any, bus: Bus | None = None,
                 service_metrics: ServiceMetrics | None = None) -> None:
        from tm_common.service.wiring import make_bus

        self.settings = settings
        self.bus: Bus = bus if bus is not None else make_bus(settings)
        self.service_metrics = service_metrics or ServiceMetrics(settings.service_name,
                                                                 settings.version)

    def parts(self) -> ServiceParts:
        raise NotImplementedError

    def runtime(self) -> ServiceRuntime:
        """The runtime of :meth:`parts`."""
        return self.parts().runtime()
