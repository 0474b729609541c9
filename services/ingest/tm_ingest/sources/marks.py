"""Intra-bar mark poller: every ``interval_s`` (default 60 s), each symbol's public ticker
(``GET /v5/market/tickers``), published on ``md.mark`` as a ``mark.updated``.

Live mode only (``TM_INGEST_MARK_POLL_S``; 0 = off): replay and backtest never poll, so their
runs stay a function of the recorded bars. A mark is stamped with the poller's clock when it
asked (``clock_ms``: the service's clock, wall time live) and published once per
``(instrument, at_ms)``: a clock that has not moved since the symbol's last mark publishes
nothing for it (the event id derives from the same key, so a repeat would be harmless anyway).
A failed poll of one symbol (transport, HTTP error, a bad row) is logged and counted; the other
symbols are still polled and the next round retries; a rate limit waits for the whole round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from tm_common.errors import TransientError
from tm_common.events import MarkUpdated

from tm_ingest.domain.marks import BadMark
from tm_ingest.sources.rest import BybitRestClient, RateLimited, VenueError

log = structlog.get_logger("tm.ingest.marks")

Publish = Callable[[Sequence[MarkUpdated]], Awaitable[object]]


class MarkPoller:
    """Polls each symbol's ticker and publishes the new marks through ``publish``.

    ``clock_ms``: the time (ms) a mark is stamped with; ``on_error(reason)``: told about every
    symbol that failed."""

    def __init__(self, client: BybitRestClient, publish: Publish, symbols: Sequence[str], *,
                 interval_s: float = 60.0, clock_ms: Callable[[], int] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"mark poll interval must be > 0 s, got {interval_s}")
        self.client, self.publish, self.symbols = client, publish, tuple(symbols)
        self.interval_s = interval_s
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.on_error = on_error or (lambda reason: None)
        self.last_at_ms: dict[str, int] = {}
        self.published = 0
        self.errors = 0
        self.rounds = 0

    async def poll_once(self) -> list[MarkUpdated]:
        """One round over every symbol; returns the marks published (oldest symbol order)."""
        fresh: list[MarkUpdated] = []
        for sym in self.symbols:
            try:
                m = await self.client.fetch_mark(sym, self.clock_ms())
            except RateLimited:
                raise                       # the whole round waits
            except (VenueError, BadMark) as e:
                self.errors += 1
                self.on_error(str(e))
                log.warning("ingest.mark_failed", symbol=sym, error=str(e))
                continue
            if m.at_ms > self.last_at_ms.get(sym, -1):
                fresh.append(m)
        if fresh:
            await self.publish(fresh)
            for m in fresh:
                self.last_at_ms[m.instrument] = m.at_ms
        self.published += len(fresh)
        self.rounds += 1
        return fresh

    async def run(self) -> None:
        """Poll until cancelled, one round every ``interval_s`` (the round's own time counts
        toward it); a rate limit waits for as long as the venue asks."""
        while True:
            t0 = time.monotonic()
            wait = self.interval_s
            try:
                await self.poll_once()
            except RateLimited as e:
                self.errors += 1
                wait = max(self.interval_s, e.retry_after_s or 0.0)
                log.warning("ingest.mark_rate_limited", error=str(e), retry_in_s=wait)
            except TransientError as e:     # the publish itself failed (Redis): next round
                self.errors += 1
                log.warning("ingest.mark_publish_failed", error=str(e))
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - t0)))
