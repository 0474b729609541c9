"""Executor wiring: settings → arming check → venue client → preflight, handler, sources →
parts.

The arming check (:mod:`tm_executor.domain.arming`) runs first, before anything that could touch
the network: a venue ``TM_LIVE_TRADING`` does not allow raises ``ConfigError``
(``python -m tm_executor`` prints it as one line and exits 2). The venue and mode are logged
(``executor.venue``), exported (``tm_executor_venue_info{venue,mode}``) and in ``/status``
(``arming``). Trading on testnet or mainnet is audited: an ``arming`` row (``tm_common.audit``)
written behind at start on ``TM_DATABASE_URL``; mainnet refuses to start without one.
"""

from __future__ import annotations

import asyncio
import socket
import time

import structlog
from tm_common.audit import AuditEntry, AuditWriter, audit_id, cli_user
from tm_common.bus.protocol import Bus
from tm_common.bus.streams import MD_BAR, RISK_BREAKER, RISK_ORDER
from tm_common.errors import ConfigError
from tm_common.metrics import ServiceMetrics
from tm_common.service import WALL_CLOCK, Clock, ServiceParts, ServiceRuntime, make_bus, make_consumer
from tm_common.service.parts import ServiceAssembly
from tm_common.service.tasks import write_behind

from tm_executor.balance import BalanceCheck
from tm_executor.config import EXEC_VENUE, ExecutorSettings
from tm_executor.fills import FillPoller, PrivateWsSource
from tm_executor.handler import ExecutorHandler
from tm_executor.instruments import InstrumentRefresher
from tm_executor.links import LinkIds, ip_ban_key
from tm_executor.metrics import ExecutorMetrics
from tm_executor.placement import OrderPlacer
from tm_executor.preflight import Preflight
from tm_executor.reconciler import Reconciler
from tm_executor.repository import ExecutorRepository
from tm_executor.stops import StopKeeper
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor")

# md.bar: funding settled by each bar's close is published as FundingSettled (handler._funding),
# and the guard's newest bar and closes; risk.breaker: the guard's breaker (domain/guard.py).
# The order breaks ties: entries of two streams added in the same millisecond have the same id
# (risk commits a breaker change and its flatten orders together), and the consumer handles a
# batch in id order, then in this order; the guard's view comes before the intents.
INPUTS = (MD_BAR, RISK_BREAKER, RISK_ORDER, EXEC_VENUE)


class InProcessVenueClient(VenueClient):
    """The executor's client over an in-process session with pybit's method names (the
    backtest's venue): the same code path, called on the event loop instead of in a thread."""

    blocking = False

    def __init__(self, settings: ExecutorSettings, metrics: ExecutorMetrics | None,
                 session) -> None:
        super().__init__(settings, metrics)
        self.session = session

    def _session(self):
        return self.session


class ExecutorService(ServiceAssembly):
    """The parts, for the runtime and for tests that drive them directly. ``venue``: an
    in-process pybit-like session (``None``: pybit over HTTP to ``bybit_rest_url``)."""

    def __init__(self, settings: ExecutorSettings, bus=None,
                 service_metrics: ServiceMetrics | None = None, *, venue=None,
                 clock: Clock = WALL_CLOCK) -> None:
        self.arming = settings.arming()          # first: refuses an unarmed real venue
        settings.require_signing(self.arming)    # and a real venue without the intents' keys
        super().__init__(settings, bus, service_metrics)
        s = settings
        self.metrics = ExecutorMetrics(self.service_metrics.registry,
                                       large_fill_usdt=float(settings.large_fill_notional_usdt))
        self.metrics.venue_info.labels(self.arming.venue, self.arming.mode).set(1)
        self.audit = self._arming_audit(clock)
        log.info("executor.venue", venue=self.arming.venue, mode=self.arming.mode,
                 url=self.arming.rest_url)
        self.venue = (VenueClient(s, self.metrics) if venue is None
                      else InProcessVenueClient(s, self.metrics, venue))
        self.repo = ExecutorRepository(self.bus, clock)
        self.links = LinkIds(s, self.repo, real_venue=self.arming.venue != "simulator")
        self.venue.on_ip_ban = self._keep_ip_ban
        self.preflight = Preflight(self.venue, s, self.metrics, local=(
            ("link_salt", self.links.ensure), ("ip_ban", self._resume_ip_ban)))
        self.placer = OrderPlacer(self.venue, s, self.links)
        self.handler = ExecutorHandler(s, self.placer, self.preflight, self.metrics, clock=clock)
        self.ws = PrivateWsSource(s, self.repo, self.handler.open_orders, self.metrics,
                                  now_ms=self.venue.signing_ms,
                                  gate=lambda: "clock" in self.preflight.done
                                  or not self.venue.blocking)
        self.poller = FillPoller(self.venue, self.repo, self.handler.open_orders, s)
        self.stops = StopKeeper(self.venue, self.repo, self.preflight, s,
                                lambda: self.handler.state.stop_fills, self.metrics)
        if self.stops.active:
            self.handler.on_fill = self.stops.poke
        self.balance = BalanceCheck(self.venue, self.repo, self.handler, self.preflight, s,
                                    self.metrics)
        self.reconciler = Reconciler(self.venue, self.repo, self.handler, self.preflight, s,
                                     self.metrics, stops=self.stops, balance=self.balance)
        self.instruments = InstrumentRefresher(self.venue, self.preflight, self.repo, s)
        self.consumer = make_consumer(s, self.bus, self.handler, list(INPUTS), clock=clock)

    async def _keep_ip_ban(self, until_ms: int) -> None:
        """A 403's silence, kept in Redis until it ends (a restart resumes it)."""
        left_s = (until_ms - time.time() * 1000) / 1000
        if left_s > 0:
            await self.repo.put(ip_ban_key(self.settings), str(until_ms), ttl_s=left_s)

    async def _resume_ip_ban(self) -> str:
        """Preflight's first venue-free step: a silence a previous process started goes on
        (``/readyz`` says it; every venue call fails at once until it ends)."""
        raw = await self.repo.get(ip_ban_key(self.settings))
        left = self.venue.restore_ip_ban(int(raw)) if raw else 0.0
        return f"silent for {left:.0f} s more (kept from before the start)" if left else "none"

    def _arming_audit(self, clock: Clock) -> AuditWriter | None:
        """An ``arming`` audit row queued for a real venue (None for the simulator)."""
        s, a = self.settings, self.arming
        if a.venue == "simulator":
            return None
        if not (s.db_enabled and s.database_url):
            if a.venue == "mainnet":
                raise ConfigError("TM_LIVE_TRADING=armed on mainnet needs the audit trail: set "
                                  "TM_DATABASE_URL (and TM_DB_ENABLED=true)")
            log.warning("executor.arming_not_audited", venue=a.venue, reason="no TM_DATABASE_URL")
            return None
        from tm_common.db import make_engine

        writer = AuditWriter(make_engine(s.database_url), migrate_url=s.database_url)
        now_ms = clock() // 1_000_000
        writer.record([AuditEntry(
            audit_id=audit_id("arming", s.consumer, now_ms), at_ms=now_ms, kind="arming",
            what=f"executor {s.consumer} started on {a.venue} ({a.rest_url})",
            why=f"TM_LIVE_TRADING={a.mode}", who=f"{cli_user()}@{socket.gethostname()}",
            source="executor")])
        return writer

    def status(self) -> dict:
        return {"venue": self.settings.bybit_rest_url, "symbols": list(self.settings.symbols),
                "arming": {"venue": self.arming.venue, "mode": self.arming.mode,
                           "url": self.arming.rest_url,
                           "audit": None if self.audit is None else self.audit.status()},
                "preflight": self.preflight.status(), "handler": self.handler.status(),
                "order_link_salt": self.links.salt, "venue_calls": self.venue.calls, "venue_errors": self.venue.errors,
                "order_history_lookup": self.venue.history_supported,
                "private_ws": self.ws.status(), "fill_poller": self.poller.status(),
                "reconciliation": self.reconciler.status(), "venue_stops": self.stops.status(),
                "instruments": self.instruments.status()}

    async def preflight_passed(self) -> None:
        """Run the preflight until it passes (a local venue answers at once); raises
        ``RuntimeError`` with the reason if it stopped without passing."""
        await self.preflight.run(asyncio.Event())
        if not self.preflight.passed:
            raise RuntimeError(f"executor preflight failed: {self.preflight.reason}")

    def parts(self) -> ServiceParts:
        return ServiceParts(
            self.settings, self.bus, consumers=(self.consumer,),
            handlers={"handler": self.handler, "preflight": self.preflight,
                      "instruments": self.instruments},
            background={"preflight": self.preflight.run, "clock_sync": self.preflight.sync_clock,
                        "private_ws": self.ws.run,
                        "fill_poller": self.poller.run, "reconcile": self.reconciler.run,
                        **({"venue_stops": self.stops.run} if self.stops.active else {}),
                        "instruments": self.instruments.run,
                        **({} if self.audit is None else {"audit-writer": write_behind(
                            self.audit, logger=log,
                            incomplete_event="executor.audit_flush_incomplete")})},
            warmup=(self.preflight_passed,),
            ready_checks={"preflight": self.preflight.check, "venue": self.preflight.check_venue,
                          "ip_ban": self.venue.check_ip_ban, "clock": self.venue.check_clock},
            status_extra=self.status, metrics=self.service_metrics,
            lag_poll_interval_s=self.settings.lag_poll_interval_s)


def build(settings: ExecutorSettings, *, bus: Bus, registry=None, venue=None,
          clock: Clock = WALL_CLOCK) -> ServiceParts:
    """The executor on ``bus`` (see :mod:`tm_common.service.parts`; no models). ``venue``: an
    in-process session with pybit's method names (``tm_app.venue.InProcessBybit``); ``None``
    = pybit over HTTP to ``settings.bybit_rest_url``."""
    return ExecutorService(settings, bus, venue=venue, clock=clock).parts()


def build_runtime(settings: ExecutorSettings) -> ServiceRuntime:
    """The runtime of :func:`build` on a Redis bus (what ``python -m tm_executor`` serves)."""
    return build(settings, bus=make_bus(settings)).runtime()
