"""The venue's instrument filters, refreshed: the executor reads instruments-info for every traded
symbol at start (the preflight) and again every ``instruments_refresh_s`` (a day by default),
with :meth:`tm_common.instruments.InstrumentSpec.from_info`, the project's one parser of it.

A refresh that finds a difference uses it at once (the next intent is checked against the new
filters) and publishes it as ``InstrumentsChanged`` on ``exec.report`` (retried every 5 s while
Redis refuses); risk consumes it
through its ``set_instruments`` hook, so that it sizes with the new step before its own daily
reload. A refresh that fails is logged and retried at the next interval; the filters kept are
the last ones read.
"""

from __future__ import annotations

import asyncio
import hashlib

import structlog
from tm_common.errors import TransientError
from tm_common.events import InstrumentFilters, InstrumentsChanged
from tm_common.instruments import ORDER_FILTERS, InstrumentSpec, spec_changes

from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import VenueError
from tm_executor.preflight import Preflight
from tm_executor.repository import ExecutorRepository
from tm_executor.venue import VenueClient

log = structlog.get_logger("tm.executor.instruments")
PUBLISH_RETRY_S = 5.0
#: Reported as a change: what ``InstrumentsChanged`` carries, and the funding interval (Bybit
#: moves an instrument to a shorter one when its rate hits the cap; the executor then asks for
#: funding on the bars the new interval settles in).
WATCHED = (*ORDER_FILTERS, "funding_interval_min")


def filters(spec: InstrumentSpec) -> InstrumentFilters:
    return InstrumentFilters(symbol=spec.symbol, **{f: getattr(spec, f) for f in ORDER_FILTERS})


class InstrumentRefresher:
    def __init__(self, venue: VenueClient, preflight: Preflight, repo: ExecutorRepository,
                 settings: ExecutorSettings) -> None:
        self.venue, self.preflight, self.repo, self.s = venue, preflight, repo, settings
        self.refreshes = self.published = 0
        self.last_error: str | None = None
        self.last_changes: dict[str, str] = {}
        self.pending: tuple[InstrumentsChanged, str] | None = None   # not published yet

    async def run(self, stop: asyncio.Event) -> None:
        """Background task: once the preflight passed, refresh every
        ``instruments_refresh_s``."""
        while not stop.is_set():
            wait = self.s.instruments_refresh_s
            if self.pending is not None:         # a change not published yet: soon again
                wait = min(wait, PUBLISH_RETRY_S)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass
            if stop.is_set() or not self.preflight.passed:
                continue
            try:
                if self.pending is not None:
                    await self._publish()
                else:
                    await self.refresh_once()
                self.last_error = None
            except VenueError as e:
                self.last_error = f"{e.endpoint}: {e.code_label}: {e.message}"
                log.warning("executor.instruments_refresh_failed", error=self.last_error)
            except TransientError as e:          # Redis: the change stays pending
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("executor.instruments_refresh_failed", error=self.last_error)

    async def refresh_once(self) -> InstrumentsChanged | None:
        """Read every traded symbol's filters; a change is used and published (returned)."""
        self.refreshes += 1
        new = {sym: await self.venue.instrument(sym) for sym in self.s.symbols}
        changed = spec_changes(self.preflight.specs, new, WATCHED)
        self.preflight.specs = {**self.preflight.specs, **new}
        if not changed:
            return None
        checked_ms = self.venue.signing_ms()
        body = InstrumentsChanged(source=f"executor {self.s.consumer}", checked_at_ms=checked_ms,
                                  instruments=[filters(new[s]) for s in sorted(changed)],
                                  changes=changed)
        digest = hashlib.sha256(repr(sorted(changed.items())).encode()).hexdigest()[:16]
        self.pending = (body, f"instruments:{checked_ms}:{digest}")
        self.last_changes = changed
        for sym, what in changed.items():
            log.warning("executor.instruments_changed", instrument=sym, change=what)
        await self._publish()
        return body

    async def _publish(self) -> None:
        """Publish the pending change (same key each try: one event however often retried)."""
        assert self.pending is not None
        body, key = self.pending
        await self.repo.report(body, key=key, correlation_id=f"instruments:{body.checked_at_ms}")
        self.pending = None
        self.published += 1

    def status(self) -> dict:
        return {"refreshes": self.refreshes, "published": self.published,
                "pending": self.pending is not None,
                "last_changes": dict(self.last_changes), "last_error": self.last_error}
