"""The FastAPI app every service runs, and the process entry point.

A service's ``app.py`` is wiring only: one ``build(settings, *, bus, registry=None,
venue=None, clock=...)`` that returns its :class:`~tm_common.service.parts.ServiceParts`
(consumers from ``make_consumer``, routers, background tasks, readiness checks)::

    def build(settings, *, bus, registry=None, venue=None, clock=WALL_CLOCK) -> ServiceParts:
        handler = SignalHandler(...)
        consumer = make_consumer(settings, bus, handler, [MD_BAR, MD_DVOL], clock=clock)
        return ServiceParts(settings, bus, consumers=(consumer,), handlers={"handler": handler},
                            ready_checks={"model": handler.ready}, status_extra=handler.status)

and its ``__main__.py`` is ``raise SystemExit(serve(build, SignalSettings()))``, which is
``run_service(parts.runtime(), routers=parts.routers)`` on a Redis bus.

Endpoints:

- ``GET /healthz``: 200 while the process and its event loop run (the answer comes from the loop).
- ``GET /readyz``: 200 when Redis answers and every ready check passes; otherwise 503 with
  ``{"ready": false, "not_ready": [...], "checks": {name: "ok" | why}}``.
- ``GET /metrics``: Prometheus text format of the service's registry (this exact path).
- ``GET /status``: service, version, consumer, group, last event handled, counts, lag and
  pending per stream, and the service's ``status_extra()``; secrets redacted.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from tm_common.errors import ConfigError
from tm_common.logging import configure_logging
from tm_common.metrics import CONTENT_TYPE_LATEST
from tm_common.service.parts import ServiceParts
from tm_common.service.runtime import ServiceRuntime
from tm_common.service.wiring import make_bus

log = structlog.get_logger("tm.service")

# uvicorn's exit status when the app's lifespan start-up failed.
STARTUP_FAILURE = 3
# A configuration refused before anything started (one ``error:`` line on stderr).
CONFIG_ERROR = 2


def create_app(runtime: ServiceRuntime, *, routers: Sequence[Any] = ()) -> FastAPI:
    """A FastAPI app whose lifespan starts ``runtime`` and stops it (graceful drain) on shutdown;
    ``routers`` (FastAPI ``APIRouter``s) are served beside the base endpoints."""
    s = runtime.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=s.service_name, version=s.version, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": s.service_name}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ok, checks = await runtime.check_ready()
        body = {"ready": ok, "service": s.service_name,
                "not_ready": [k for k, v in checks.items() if v != "ok"], "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status")
    async def status() -> JSONResponse:
        return JSONResponse(runtime.status())

    for router in routers:
        app.include_router(router)
    return app


def parts_app(parts: ServiceParts) -> FastAPI:
    """The app of a built service: its runtime and its routers."""
    return create_app(parts.runtime(), routers=parts.routers)


def app_of(build: Callable[..., ServiceParts], settings: Any) -> FastAPI:
    """The app (:func:`parts_app`) of ``build(settings, bus=<Redis bus>)``, not started: what a
    service's ``uvicorn --factory`` function returns."""
    return parts_app(build(settings, bus=make_bus(settings)))


def entry_points(build: Callable[..., ServiceParts], settings_cls: Callable[[], Any]
                 ) -> tuple[Callable[[Any], ServiceRuntime], Callable[[], FastAPI]]:
    """``(build_runtime, app_from_env)`` for a service's ``build``: ``build_runtime(settings)``
    is the runtime of ``build`` on a Redis bus (what ``python -m tm_<svc>`` serves);
    ``app_from_env()`` is :func:`app_of` with ``settings_cls()`` (for ``uvicorn --factory
    tm_<svc>.app:app_from_env``)."""

    def build_runtime(settings: Any) -> ServiceRuntime:
        return build(settings, bus=make_bus(settings)).runtime()

    def app_from_env() -> FastAPI:
        return app_of(build, settings_cls())

    return build_runtime, app_from_env


def serve(build: Callable[..., ServiceParts], settings: Any) -> int:
    """``python -m tm_<svc>``: ``build(settings, bus=<Redis bus>)`` served until SIGTERM/SIGINT.
    Use as ``raise SystemExit(serve(build, Settings()))``; the exit status is
    :func:`run_service`'s, or 2 (:data:`CONFIG_ERROR`) with one ``error:`` line on stderr when
    ``settings.startup_check()`` (if the settings have one) or ``build`` raises
    :class:`~tm_common.errors.ConfigError`."""
    try:
        # the settings' own start-up check first (the executor's arming): before any network
        # call, even before an embedded Redis would be started for the bus
        check = getattr(settings, "startup_check", None)
        if check is not None:
            check()
        configure_logging(settings)          # before build: what build logs is a log line
        parts = build(settings, bus=make_bus(settings))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return CONFIG_ERROR
    return run_service(parts.runtime(), routers=parts.routers, configure_logs=False)


def run_service(runtime: ServiceRuntime, *, routers: Sequence[Any] = (),
                configure_logs: bool = True) -> int:
    """Serve ``runtime`` (and ``routers``, as :func:`create_app`) with uvicorn on
    ``settings.http_host:http_port`` until SIGTERM/SIGINT.

    On a signal: stop accepting requests, stop the consumers, finish the entries in hand (bounded
    by ``runtime.drain_timeout_s``), close the bus, and return 0. Returns 3 if start-up failed.
    Use as ``raise SystemExit(run_service(runtime))``.
    """
    import uvicorn

    s = runtime.settings
    if configure_logs:
        configure_logging(s)
    config = uvicorn.Config(create_app(runtime, routers=routers), host=s.http_host, port=s.http_port,
                            log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    received: list[int] = []

    def note(sig: int, frame: object) -> None:
        received.append(sig)
        server.should_exit = True   # a signal before uvicorn's own handlers: shut down at once

    # uvicorn handles SIGTERM/SIGINT during serve() and, after its graceful shutdown, re-raises
    # the signal into the handler that was installed before. With the default handler that
    # would kill the process by the signal (exit status -15) after a clean drain; installing
    # this one first makes a drained shutdown exit 0, as Kubernetes expects.
    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        log.error("service.startup_failed", service=s.service_name)
        return STARTUP_FAILURE
    log.info("service.exit", service=s.service_name,
             signal=[signal.Signals(x).name for x in received])
    return 0
