"""How a service builds its bus and consumers from its settings, the same way everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from tm_common.bus.consumer import Consumer
from tm_common.bus.handler import Emit, Handler, StatefulHandler
from tm_common.bus.observer import ConsumerObserver
from tm_common.bus.protocol import Bus
from tm_common.bus.signing import KeyRing
from tm_common.events.base import Envelope
from tm_common.logging import bound_event


def make_bus(settings: Any) -> Any:
    """A ``RedisStreamsBus`` on ``settings.redis_url`` under ``settings.namespace``.

    No URL configured → the shared embedded Redis (``tm_common.embedded``), started if needed,
    as the service's own ACL user (``settings.service_name``, :data:`tm_common.bus.acl.ACCESS`).
    The bus connects lazily: a service starts (and answers ``/healthz``) with Redis down.
    ``redis_tls_ca_file`` / ``redis_tls_cert_file`` / ``redis_tls_key_file`` (with a
    ``rediss://`` URL) are passed to the connection pool; raises :class:`ConfigError` when they
    are set for a plain ``redis://`` URL (they would be silently ignored). The bus signs what
    it publishes with the settings' signing keys (:mod:`tm_common.bus.signing`).
    """
    from tm_common.bus.redis import RedisStreamsBus

    url = settings.redis_url
    if url is None:
        from tm_common.bus.acl import ACCESS
        from tm_common.embedded import ensure_embedded_redis  # lazy: starts a server process

        # as its own ACL user (tm_common.bus.acl) when it has one, else tm-admin
        name = str(getattr(settings, "service_name", ""))
        url = ensure_embedded_redis(settings, user=name if name in ACCESS else None)
    tls: dict[str, Any] = dict(redis_tls_options(settings, url))
    return RedisStreamsBus(url, prefix=settings.namespace, keys=KeyRing.from_settings(settings),
                           **tls)


def redis_tls_options(settings: Any, url: str) -> dict[str, str]:
    """redis-py's ``ssl_*`` keyword arguments from the settings' TLS files (none set → ``{}``)."""
    files = {"ssl_ca_certs": getattr(settings, "redis_tls_ca_file", None),
             "ssl_certfile": getattr(settings, "redis_tls_cert_file", None),
             "ssl_keyfile": getattr(settings, "redis_tls_key_file", None)}
    opts = {k: str(v) for k, v in files.items() if v is not None}
    if opts and not url.startswith("rediss://"):
        from tm_common.errors import ConfigError

        raise ConfigError("TM_REDIS_TLS_* files are set but TM_REDIS_URL is not a rediss:// URL")
    return opts


def state_key(settings: Any) -> str:
    """Where the group's handler state is saved: ``{namespace}state:{group}``.

    Per group rather than per consumer name: a pod's name changes when its Deployment rolls, and
    state keyed by it would be lost. One writer per group is the model (ARCHITECTURE §4): the
    consumer fences its commits with the group's writer generation, kept beside it under
    ``tm_common.bus.lifecycle.generation_key(state_key)``."""
    return f"{settings.namespace}state:{settings.group}"


# Entries of one read committed together by a service's consumer (one round trip and one state
# snapshot per batch; docs/ARCHITECTURE.md §4 "Commit batching").
COMMIT_BATCH = 16


def make_consumer(settings: Any, bus: Bus, handler: Handler, streams: Sequence[str],
                  observer: ConsumerObserver | None = None, **overrides: Any) -> Consumer:
    """A :class:`Consumer` of ``streams`` for this service's group and replica.

    Uses ``settings.group``, ``consumer``, ``max_deliveries``, ``reclaim_idle_ms``,
    ``reclaim_interval_s`` and ``read_block_ms``; ``overrides`` are passed to ``Consumer`` as is
    (e.g. ``batch=16``, ``clock=...``). The handler is wrapped so that its log lines carry the
    event's ``correlation_id`` and ``instrument``. ``observer=None``: :class:`ServiceRuntime`
    attaches its Prometheus observer. The consumer verifies its inputs with the settings'
    signing keys (:mod:`tm_common.bus.signing`).
    """
    kw: dict[str, Any] = {
        "group": settings.group, "consumer": settings.consumer, "streams": streams,
        "state_key": state_key(settings), "observer": observer,
        "max_deliveries": settings.max_deliveries, "reclaim_idle_ms": settings.reclaim_idle_ms,
        "reclaim_interval_s": settings.reclaim_interval_s, "block_ms": settings.read_block_ms,
        "keys": KeyRing.from_settings(settings), "commit_batch": COMMIT_BATCH}
    kw.update(overrides)
    return Consumer(bus, with_log_context(handler), **kw)


class _LogContextHandler:
    """Binds the event's log context around ``handle`` (the consumer loop knows nothing of logs)."""

    def __init__(self, inner: Handler) -> None:
        self.inner = inner

    async def handle(self, event: Envelope) -> Sequence[Emit]:
        with bound_event(event):
            return await self.inner.handle(event)


class _StatefulLogContextHandler(_LogContextHandler):
    def snapshot(self) -> bytes:
        return cast(StatefulHandler, self.inner).snapshot()

    def restore(self, data: bytes | None) -> None:
        cast(StatefulHandler, self.inner).restore(data)


def with_log_context(handler: Handler) -> Handler:
    """``handler`` with log context bound per event; stays a ``StatefulHandler`` if it was one."""
    if isinstance(handler, _LogContextHandler):
        return handler
    if isinstance(handler, StatefulHandler):
        return _StatefulLogContextHandler(handler)
    return _LogContextHandler(handler)
