"""The four standard service routes: /healthz, /readyz, /metrics (Prometheus text), /status."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def add_service_routes(app: FastAPI, *, registry: CollectorRegistry,
                       ready: Callable[[], tuple[bool, dict]],
                       status: Callable[[], dict]) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok, detail = ready()
        return JSONResponse({"ready": ok, **detail}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status", include_in_schema=False)
    async def status_route() -> dict:
        return status()
