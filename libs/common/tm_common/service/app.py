"""The FastAPI app every service runs, and the process entry point.

A service's ``app.py`` is wiring only (``make_bus``/``make_consumer`` from
:mod:`tm_common.service.wiring`)::

    settings = SignalSettings()                       # frozen, from TM_* variables
    bus = make_bus(settings)
    consumer = make_consumer(settings, bus, SignalHandler(...), [MD_BAR, MD_DVOL])
    runtime = ServiceRuntime(settings, bus, consumers=[consumer],
                             ready_checks={"models": registry.loaded},
                             status_extra=lambda: {"model_version": registry.version})
    app = create_app(runtime)          # add service routes with app.include_router(...)

and its ``__main__.py`` is ``raise SystemExit(run_service(runtime))``.

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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from tm_common.logging import configure_logging
from tm_common.metrics import CONTENT_TYPE_LATEST
from tm_common.service.runtime import ServiceRuntime

log = structlog.get_logger("tm.service")

# uvicorn's exit status when the app's lifespan start-up failed.
STARTUP_FAILURE = 3


def create_app(runtime: ServiceRuntime) -> FastAPI:
    """A FastAPI app whose lifespan starts ``runtime`` and stops it (graceful drain) on shutdown."""
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
    async def healthz() -> dict:
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

    return app


def run_service(runtime: ServiceRuntime, *, configure_logs: bool = True) -> int:
    """Serve ``runtime`` with uvicorn on ``settings.http_host:http_port`` until SIGTERM/SIGINT.

    On a signal: stop accepting requests, stop the consumers, finish the entries in hand (bounded
    by ``runtime.drain_timeout_s``), close the bus, and return 0. Returns 3 if start-up failed.
    Use as ``raise SystemExit(run_service(runtime))``.
    """
    import uvicorn

    s = runtime.settings
    if configure_logs:
        configure_logging(s)
    config = uvicorn.Config(create_app(runtime), host=s.http_host, port=s.http_port,
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
