"""Risk wiring: settings → bus → handler → consumer → parts (+ the admin routes).

The consumer reads ``sizing.target``, ``portfolio.snapshot``, ``portfolio.valuation`` (intra-bar,
live only), ``md.bar``, ``exec.report`` and ``risk.command``. With ``stale_check_interval_s`` > 0 and a live-time ``mode`` (not
replay/backtest) a watchdog looks at the clock (``build``'s; the wall clock by default) every that
many seconds and, when the handler's clock checks would fire at that time (a feed went silent, or
the cool-down elapsed while no event arrived), appends a ``tick`` command: the handler applies it
like any input, so even the watchdog's trips are events in the stream.

Lot filters: the venue's (:mod:`tm_risk.instruments`): a warm-up step loads them once (in-process
drivers), the background task ``instruments`` loads them at start (retrying with backoff until it
works) and every ``instruments_refresh_s``; the ``instruments`` readiness check fails, naming the
symbols, until every traded symbol has them.

Audit: with ``db_enabled`` and an explicit ``TM_DATABASE_URL``, kills, manual trips, resets and
loss-limit trips are written to the ``audit`` table by a write-behind
:class:`~tm_common.audit.AuditWriter` (background ``audit-writer``; it migrates the schema before
its first write, so the service starts and a kill flattens while the database is down).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from fastapi import FastAPI
from tm_common.audit import AuditWriter
from tm_common.bus.protocol import Bus
from tm_common.bus.streams import (
    EXEC_REPORT,
    MD_BAR,
    PORTFOLIO_SNAPSHOT,
    PORTFOLIO_VALUATION,
    SIZING_TARGET,
)
from tm_common.errors import NotReady, TradeMatrixError
from tm_common.instruments import TRADING
from tm_common.metrics import ServiceMetrics
from tm_common.service import WALL_CLOCK, Clock, ServiceParts, ServiceRuntime, every, make_bus, make_consumer
from tm_common.service.tasks import write_behind
from tm_common.timefmt import utc_minute

from tm_risk.admin import admin_router
from tm_risk.commands import RISK_COMMAND, command_envelope
from tm_risk.config import RiskSettings
from tm_risk.domain import breaker as brk
from tm_risk.domain import loss_limits as ll
from tm_risk.domain.decision import exposures
from tm_risk.handler import RiskHandler
from tm_risk.instruments import Loader, instrument_source
from tm_risk.metrics import RiskMetrics

log = structlog.get_logger("tm.risk")
INPUTS = (SIZING_TARGET, PORTFOLIO_SNAPSHOT, MD_BAR, EXEC_REPORT, RISK_COMMAND,
          PORTFOLIO_VALUATION)


def status(handler: RiskHandler) -> dict[str, Any]:
    """``/status`` extra: breaker, clock, equity, expected positions and exposure (no secrets)."""
    s, p = handler.state, handler.params
    b = s.breaker
    doc: dict[str, Any] = {
        "breaker": {"state": b.state.value, "since_ms": b.since_ms,
                    "peak_equity": None if b.peak_equity is None else str(b.peak_equity),
                    "drawdown": None if s.equity is None else brk.drawdown(s.equity, b.peak_equity),
                    "exec_failures": b.failures, "held_bars": b.held_bars, "hold": b.hold},
        "loss_limits": {
            "daily_limit": p.breaker.daily_loss_limit,
            "daily_loss": None if s.equity is None else ll.loss(s.equity,
                                                                s.losses.day_start_equity),
            "day_start_equity": _str(s.losses.day_start_equity),
            "cumulative_limit": p.breaker.cumulative_loss_limit,
            "cumulative_loss": None if s.equity is None else ll.loss(s.equity,
                                                                     s.losses.baseline_equity),
            "baseline_equity": _str(s.losses.baseline_equity),
            "baseline_at_ms": s.losses.baseline_at_ms,
            "baseline_reason": s.losses.baseline_reason},
        "intrabar": {"valuation_ms": s.valuation_ms,
                     "valuation_equity": _str(s.valuation_equity),
                     "drawdown": None if s.valuation_equity is None
                     else brk.drawdown(s.valuation_equity, b.peak_equity)},
        "audit_outbox": len(s.audit_outbox),
        "clock_ms": s.clock_ms, "equity": None if s.equity is None else str(s.equity),
        "snapshot_bar_ms": s.snapshot_bar_ms,
        "positions": {i: str(s.position(i)) for i in p.symbols},
        "last_bar_open_ms": dict(s.last_bar_open_ms),
        "instruments": {"source": handler.instruments_source, "filters": {
            i: {f: str(getattr(spec, f)) for f in ("qty_step", "min_order_qty", "max_order_qty",
                                                   "max_mkt_order_qty", "min_notional")}
            for i, spec in p.instruments.items() if i in p.symbols},
            "delistings": {i: f"{utc_minute(spec.delivery_time_ms)} UTC"
                           for i, spec in p.instruments.items()
                           if i in p.symbols and spec.delivery_time_ms},
            "not_trading": {i: spec.status for i, spec in p.instruments.items()
                            if i in p.symbols and spec.status != TRADING}},
    }
    if s.equity is not None and s.equity > 0:
        doc["exposure"] = exposures(s, p, s.equity)
    return doc


def _str(x: object) -> str | None:
    return None if x is None else str(x)


def audit_writer(settings: RiskSettings) -> AuditWriter | None:
    """The audit writer on ``TM_DATABASE_URL`` (None without one, or with ``db_enabled`` off);
    creating it opens no connection."""
    if not (settings.db_enabled and settings.database_url):
        return None
    from tm_common.db import make_engine

    return AuditWriter(make_engine(settings.database_url), migrate_url=settings.database_url)


def clock_would_fire(handler: RiskHandler, now_ms: int) -> bool:
    """Would the breaker's clock triggers fire at ``now_ms`` (pure preview, state unchanged)?"""
    s, p = handler.state, handler.params
    data_now = max(now_ms, *s.last_bar_end_ms.values()) if s.last_bar_end_ms else now_ms
    _, trans = brk.on_clock(s.breaker, max(now_ms, s.clock_ms),
                            p.bar_feeds(s.last_bar_end_ms, data_now), p.interval_ms, p.breaker,
                            data_now)
    return bool(trans)


async def _md_caught_up(bus: Bus, settings: RiskSettings) -> bool:
    """True when this group has read and acked every ``md.bar`` entry."""
    info = next((g for g in await bus.group_info(MD_BAR) if g["name"] == settings.group), None)
    return info is not None and info["lag"] == 0 and info["pending"] == 0


def watchdog(settings: RiskSettings, bus: Bus, handler: RiskHandler, clock: Clock = WALL_CLOCK):
    """``async fn(stop)`` for the runtime: the live wall-clock check (module docstring);
    ``clock`` gives the time in ns."""
    async def run(stop: asyncio.Event) -> None:
        async for _ in every(settings.stale_check_interval_s, stop):
            now_ns = clock()
            if clock_would_fire(handler, now_ns // 1_000_000) and await _md_caught_up(bus, settings):
                env = command_envelope("tick", reason="wall-clock check", now_ns=now_ns,
                                       issued_by="watchdog")
                await bus.publish(RISK_COMMAND, env)
                log.info("risk.watchdog_tick", command_id=env.body.command_id)  # type: ignore[attr-defined]
    return run


def instruments_task(settings: RiskSettings, handler: RiskHandler, source: str, load: Loader):
    """``async fn(stop)``: load the venue's lot filters into ``handler`` now, retrying 1, 2, 4 …
    60 s apart until it works, then again every ``instruments_refresh_s`` (0: once)."""
    async def run(stop: asyncio.Event) -> None:
        retry_s = 1.0
        while not stop.is_set():
            try:
                handler.set_instruments(await load(), source)
                retry_s, wait_s = 1.0, settings.instruments_refresh_s
                if wait_s <= 0:
                    return
            except (TradeMatrixError, ValueError, OSError) as e:
                log.warning("risk.instruments_load_failed", source=source,
                            error=f"{type(e).__name__}: {e}", retry_in_s=retry_s)
                wait_s, retry_s = retry_s, min(retry_s * 2, 60.0)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait_s)
            except TimeoutError:
                pass
    return run


def build(settings: RiskSettings, *, bus: Bus, registry=None, venue=None,
          clock: Clock = WALL_CLOCK) -> ServiceParts:
    """The risk service on ``bus``, with the breaker admin routes (see
    :mod:`tm_common.service.parts`; no models). ``venue``: an in-process venue session to read
    the lot filters from (else the configured file or ``venue_rest_url``). The watchdog runs in
    a live-time ``mode`` only (``settings.watchdog_enabled``)."""
    metrics = ServiceMetrics(settings.service_name, settings.version)
    audit = audit_writer(settings)
    handler = RiskHandler(settings.params(), observer=RiskMetrics(metrics.registry), audit=audit)
    consumer = make_consumer(settings, bus, handler, list(INPUTS), clock=clock)
    source, load = instrument_source(settings, venue)

    async def load_instruments() -> None:
        handler.set_instruments(await load(), source)

    def instruments_ready() -> bool:
        ok, why = handler.instruments_ready()
        if not ok:
            raise NotReady(why)
        return True
    background = {"instruments": instruments_task(settings, handler, source, load)}
    if settings.watchdog_enabled:
        background["stale-watchdog"] = watchdog(settings, bus, handler, clock)
    if audit is not None:
        background["audit-writer"] = write_behind(audit, logger=log,
                                                  incomplete_event="risk.audit_flush_incomplete")
    return ServiceParts(settings, bus, consumers=(consumer,), handlers={"handler": handler},
                        routers=(admin_router(settings, bus, handler),), background=background,
                        warmup=(load_instruments,),
                        ready_checks={"instruments": instruments_ready},
                        status_extra=lambda: status(handler), metrics=metrics,
                        lag_poll_interval_s=settings.lag_poll_interval_s)


def build_runtime(settings: RiskSettings) -> ServiceRuntime:
    """The runtime of :func:`build` on a Redis bus (without the admin routes: see
    :func:`build_app`)."""
    return build(settings, bus=make_bus(settings)).runtime()


def build_app(settings: RiskSettings | None = None) -> FastAPI:
    """The service app: base endpoints plus the breaker admin routes."""
    from tm_common.service import app_of

    return app_of(build, settings or RiskSettings())
