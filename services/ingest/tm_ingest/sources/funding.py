"""Funding-rate poller: every ``interval_s``, Bybit's settled rates of each symbol since the newest
one published (``GET /v5/market/funding/history``), published once on ``md.funding``.

Funding settles at every multiple of the instrument's funding interval (8 h for BTC, ETH and
SOL: 00:00, 08:00, 16:00 UTC; 1, 2 or 4 h for others), so always on a whole UTC hour: the
poller waits ``interval_s`` (a safety net), or less so that it also polls ``SETTLE_GRACE_S``
after each whole hour, when a new rate of any interval is out. Settlements need no interval
here: each poll asks for everything settled since the newest rate published. A cold start
(nothing published yet for a symbol) looks back ``lookback_ms`` (default 7 days, the longest
funding window a feature reads).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from tm_common.events import FundingRateUpdated

from tm_ingest.sources.rest import BybitRestClient, RateLimited, VenueError

log = structlog.get_logger("tm.ingest.funding")
#: Every Bybit funding interval (1, 2, 4 or 8 h) settles on a whole UTC hour.
SETTLE_GRID_MS = 3600 * 1000
DEFAULT_LOOKBACK_MS = 7 * 24 * 3600 * 1000
SETTLE_GRACE_S = 30.0


def next_poll_s(now_ms: int, interval_s: float, grace_s: float = SETTLE_GRACE_S) -> float:
    """Seconds until the next poll: ``interval_s``, or sooner to land ``grace_s`` after the next
    whole hour (a possible settlement)."""
    to_settle_s = (SETTLE_GRID_MS - now_ms % SETTLE_GRID_MS) / 1000 + grace_s
    if to_settle_s > SETTLE_GRID_MS / 1000:          # still inside the grace of the last one
        to_settle_s -= SETTLE_GRID_MS / 1000
    return max(0.0, min(interval_s, to_settle_s))

Publish = Callable[[Sequence[FundingRateUpdated]], Awaitable[list[FundingRateUpdated]]]


class FundingPoller:
    """Polls each symbol's settled funding and publishes the new rates through ``publish``.

    ``last_published(symbol)``: the newest settle time already published (ms), or None."""

    def __init__(self, client: BybitRestClient, publish: Publish, symbols: Sequence[str], *,
                 last_published: Callable[[str], int | None], interval_s: float = 600.0,
                 lookback_ms: int = DEFAULT_LOOKBACK_MS,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.client, self.publish, self.symbols = client, publish, tuple(symbols)
        self.last_published, self.interval_s, self.lookback_ms = last_published, interval_s, lookback_ms
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.errors = 0
        self.published = 0

    async def poll_once(self) -> int:
        """One round over every symbol; returns the number of rates published."""
        n = 0
        for sym in self.symbols:
            n += await self.poll_symbol(sym)
        return n

    async def poll_symbol(self, symbol: str) -> int:
        """Publish ``symbol``'s rates settled since the newest one published; returns how many.

        Raises:
            RateLimited, VenueError: as :meth:`BybitRestClient.fetch_funding`.
        """
        now = self.clock_ms()
        last = self.last_published(symbol)
        start = now - self.lookback_ms if last is None else last + 1
        n = len(await self.publish(await self.client.fetch_funding(symbol, start, now)))
        self.published += n
        return n

    async def run(self) -> None:
        """Poll until cancelled; venue errors are logged and counted, the next poll retries."""
        while True:
            try:
                wait = next_poll_s(self.clock_ms(), self.interval_s)
                n = await self.poll_once()
                if n:
                    log.info("ingest.funding_published", rates=n)
            except RateLimited as e:
                self.errors += 1
                wait = max(self.interval_s, e.retry_after_s or 0.0)
                log.warning("ingest.funding_rate_limited", error=str(e), retry_in_s=wait)
            except VenueError as e:
                self.errors += 1
                wait = self.interval_s
                log.warning("ingest.funding_failed", error=str(e))
            await asyncio.sleep(wait)
