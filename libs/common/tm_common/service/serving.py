"""The wiring the model-serving services (regime, signal, sizer) share: their database (migrated,
with the model registry on it) and their parts (one consumer, the model prefetch, the
write-behind writer of the handler's table, readiness on the loaded model).

Each service supplies only what differs: its handler (with ``prefetch``, ``ready``, ``status``
and ``repo``), its input streams, its log event prefix and what its models are called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tm_common.bus.protocol import Bus
from tm_common.metrics import ServiceMetrics
from tm_common.service.parts import WALL_CLOCK, Clock, ServiceParts
from tm_common.service.runtime import Background
from tm_common.service.tasks import retry_until_done, write_behind
from tm_common.service.wiring import make_consumer


def model_database(settings: Any, registry: Any = None) -> tuple[Any, Any]:
    """``(registry, db)``: with ``settings.db_enabled``, the service's database (migrated first)
    and ``registry`` or else a ``ModelRegistry`` on that database; otherwise ``(registry, None)``."""
    if not settings.db_enabled:
        return registry, None
    from tm_common.db import make_engine, resolve_database_url
    from tm_common.db.migrate import migrate
    from tm_common.models.registry import ModelRegistry

    url = resolve_database_url(settings)
    migrate(url)
    db = make_engine(url)
    return registry or ModelRegistry(db), db


def model_serving_parts(settings: Any, bus: Bus, handler: Any, streams: Sequence[str], *,
                        metrics: ServiceMetrics, event_prefix: str, logger: Any,
                        clock: Clock = WALL_CLOCK, kind: str = "model",
                        background: Mapping[str, Background] | None = None) -> ServiceParts:
    """The parts of a model-serving service: a consumer of ``streams`` driving ``handler``;
    background ``"<kind>-prefetch"`` (``handler.prefetch`` retried every
    ``settings.model_prefetch_retry_s`` seconds, failures logged as
    ``"<event_prefix>.prefetch_failed"``), then ``background``, then, when ``handler.repo`` is not
    ``None``, ``"db-writer"`` (its write-behind loop; an incomplete flush at shutdown is logged as
    ``"<event_prefix>.db_flush_incomplete"``); ``handler.prefetch`` as warm-up and
    ``handler.ready`` as the ready check ``kind``."""
    consumer = make_consumer(settings, bus, handler, list(streams), clock=clock)
    tasks: dict[str, Background] = {f"{kind}-prefetch": retry_until_done(
        handler.prefetch, retry_s=settings.model_prefetch_retry_s,
        failed_event=f"{event_prefix}.prefetch_failed", logger=logger)}
    tasks.update(background or {})
    if handler.repo is not None:
        # The rows are not lost for good when the flush is incomplete: the service's output
        # stream holds the same events.
        tasks["db-writer"] = write_behind(handler.repo, logger=logger,
                                          incomplete_event=f"{event_prefix}.db_flush_incomplete")
    return ServiceParts(settings, bus, consumers=(consumer,), handlers={"handler": handler},
                        background=tasks, warmup=(handler.prefetch,),
                        ready_checks={kind: handler.ready}, status_extra=handler.status,
                        metrics=metrics, lag_poll_interval_s=settings.lag_poll_interval_s)
