"""Wiring only: settings -> state, faults, gateway, routes, WebSockets, service endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.faults import FaultConfig, FaultInjector
from tm_exchange_sim.feed import ReplayFeed
from tm_exchange_sim.gateway import Gateway
from tm_exchange_sim.health import add_service_routes
from tm_exchange_sim.http_guard import HttpGuard
from tm_exchange_sim.metrics import SimMetrics
from tm_exchange_sim.ratelimit import RateLimiter
from tm_exchange_sim.routes_market import add_market_routes
from tm_exchange_sim.routes_sim import add_sim_routes
from tm_exchange_sim.routes_trade import add_trade_routes
from tm_exchange_sim.state import SimState
from tm_exchange_sim.ws import WsHub, add_ws_routes

log = structlog.get_logger("tm_exchange_sim")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def fault_config(settings: ExchangeSimSettings) -> FaultConfig:
    return FaultConfig(rate_limit_prob=settings.sim_fault_rate_limit_prob,
                       http_5xx_prob=settings.sim_fault_http_5xx_prob,
                       timeout_prob=settings.sim_fault_timeout_prob,
                       timeout_s=settings.sim_fault_timeout_s,
                       latency_ms=settings.sim_fault_latency_ms,
                       ws_drop_prob=settings.sim_fault_ws_drop_prob,
                       rate_limit_per_s=settings.sim_rate_limit_per_s,
                       ip_limit_per_5s=settings.sim_ip_limit_per_5s,
                       ip_ban_s=settings.sim_ip_ban_s)


# What a 422 says about each error: never the ``input`` (nor ``ctx``/``url``, which can quote
# it), so an error answer does not echo a caller's body back (nor a NaN that JSON cannot carry).
ERROR_FIELDS = ("type", "loc", "msg")


def _error_view(error: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: error[k] for k in ERROR_FIELDS if k in error}
    if error.get("type") == "extra_forbidden" and view.get("loc"):
        # the last element is the caller's own key: say where it was, not what it was
        view["loc"] = [*list(view["loc"])[:-1], "(unknown field)"]
    return view


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 without the input: ``{"detail": [{"type", "loc", "msg"}, ...]}``.
    Registered for :class:`RequestValidationError` only (Starlette types handlers on
    ``Exception``)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": jsonable_encoder([_error_view(e) for e in errors])},
                        status_code=422)


def create_app(settings: ExchangeSimSettings | None = None, *,
               wall_ms: Callable[[], int] = wall_clock_ms,
               feed: ReplayFeed | None = None) -> FastAPI:
    settings = settings or ExchangeSimSettings()
    state = SimState(settings, feed)
    journal: dict | None = None
    if settings.sim_journal_file is not None:        # the same account as before a restart
        from tm_exchange_sim.instruments_config import load_instruments_file
        from tm_exchange_sim.journal import Journal
        from tm_exchange_sim.restore import replay_journal

        replayed = replay_journal(state, Journal(settings.sim_journal_file))
        if replayed and settings.sim_instruments_file is not None:
            # the file is the newest (tm paper's relay rewrites it; a resumed run's was read
            # from the market at its start): the journal may end on older filters
            state.take_newer(load_instruments_file(settings.sim_instruments_file))
        journal = {"file": str(settings.sim_journal_file), "replayed_at_start": replayed}
        log.info("sim.journal_replayed", path=str(settings.sim_journal_file), entries=replayed,
                 clock_ms=state.clock_ms)
    metrics = SimMetrics(settings.service_name, settings.version)
    metrics.set_clock(state.clock_ms)
    faults = FaultInjector(fault_config(settings), seed=settings.sim_seed)
    limiter = RateLimiter(settings.sim_rate_limit_per_s)
    keys = settings.api_keys
    hub = WsHub(state, faults, metrics, keys, wall_ms)
    gateway = Gateway(faults, limiter, hub, metrics, keys, wall_ms,
                      settings.sim_recv_window_max_ms,
                      venue_ms=lambda: state.venue_ms(wall_ms()))
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None

    docs = settings.sim_docs_enabled
    app = FastAPI(title="Trade-Matrix exchange sim (Bybit V5 subset)", version=settings.version,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.sim = state
    app.state.faults = faults
    app.add_exception_handler(RequestValidationError, validation_error)
    signed = add_trade_routes(app, state, gateway, metrics)
    add_market_routes(app, state, gateway, lambda: wall_ms() * 1_000_000 + time.time_ns()
                      % 1_000_000)
    add_sim_routes(app, state, faults, limiter, hub, metrics, gateway)
    # Outermost: authentication, size cap and media type before any body is read.
    app.add_middleware(HttpGuard, admin_token=admin, max_body_bytes=settings.sim_max_body_bytes,
                       signed_paths=signed, refuse_unsigned=gateway.refuse_unknown_key)
    add_ws_routes(app, hub)

    def ready() -> tuple[bool, dict]:
        return bool(state.feed.bars), {"symbols": list(state.instruments)}

    def status() -> dict:
        eng = state.engine
        return {"service": settings.service_name, "version": settings.version,
                "feed": settings.sim_feed,
                "live": state.market.counts.as_dict() if state.market else None,
                "marks": {s: str(p) for s, p in sorted(eng.marks.items())},
                "clock_ms": state.clock_ms, "now_ms": state.now_ms,
                "symbols": list(state.instruments), "orders": len(eng.orders),
                "open_orders": len(eng.open_orders()), "executions": len(eng.executions),
                "positions": {s: str(p.size) for s, p in sorted(eng.account.positions.items())},
                "wallet_balance": str(eng.account.wallet_balance),
                "faults": faults.config.model_dump(), "faults_injected": dict(faults.injected),
                "ws_connections": len(hub.conns),
                "ws_topics": hub.topic_counts(), "dev_credentials":
                settings.uses_dev_credentials(), "journal": journal}

    add_service_routes(app, registry=metrics.registry, ready=ready, status=status)
    log.info("exchange_sim.created", symbols=list(state.instruments), clock_ms=state.clock_ms,
             dev_credentials=settings.uses_dev_credentials(), control_auth=admin is not None,
             max_body_bytes=settings.sim_max_body_bytes, docs=docs)
    return app
