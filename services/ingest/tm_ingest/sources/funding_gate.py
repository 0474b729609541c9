"""Live bars wait for the funding rate that settles at their close.

The trainer's features (and replay's, in lockstep) see a funding rate from its settlement time
on, so the bar that closes at a settlement already uses the new rate. Live, Bybit publishes that
rate only once it has settled, when the bar has just closed too: published at once, the bar
would reach the signal before its rate and be scored on the previous one (the residual of
``docs/ARCHITECTURE.md`` invariant 9).

So before a live bar that closes at a settlement of its symbol is published, the gate asks the
venue for the symbol's settled rates (:meth:`FundingPoller.poll_symbol`), every ``retry_s``,
until the rate settled at the bar's close is published or ``wait_s`` has passed since the close
(by the venue's clock; and at most ``wait_s`` of waiting by this host's);
the bar is published after it either way (a late rate is counted and logged, and the signal then
names the rate it used). Consumers handle a multi-stream read in entry-id order, so the signal
sees the rate first (``ORDER_GAP_S`` puts the bar in a later millisecond than the rate).

Which closes are settlements: each multiple of the symbol's funding interval (instruments-info
``fundingInterval``; 8 h for BTC, ETH and SOL while the venue has not answered). A symbol with no
rate published at all is not waited for (a venue without funding history for it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog
from tm_common.errors import TransientError
from tm_common.events import BarClosed
from tm_common.instruments import FUNDING_INTERVAL_MIN

from tm_ingest.domain.bars import INTERVAL_MS
from tm_ingest.sources.funding import FundingPoller
from tm_ingest.sources.rest import VenueError

log = structlog.get_logger("tm.ingest.funding_gate")
#: Entry ids order two streams only to the millisecond (each stream counts its own sequence
#: within one), and a consumer handles ids of one millisecond in its streams' order, not in
#: publication order: the bar goes out at least this long after its rate, in a later one.
ORDER_GAP_S = 0.002


class FundingGate:
    """``intervals_ms``: symbol → funding interval (ms), as instruments-info last said;
    ``clock_ms``: the venue's now (ms UTC); ``sleep``: how the gate waits between polls;
    ``on_result``: told ``(symbol, "held" | "late")`` for each settlement bar waited for."""

    def __init__(self, poller: FundingPoller, *, wait_s: float, retry_s: float = 2.0,
                 intervals_ms: Mapping[str, int] | None = None,
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_result: Callable[[str, str], None] | None = None) -> None:
        self.poller, self.wait_s, self.retry_s = poller, wait_s, retry_s
        self.intervals_ms: Mapping[str, int] = intervals_ms or {}
        self.clock_ms, self.sleep = clock_ms, sleep
        self.on_result = on_result or (lambda symbol, result: None)
        self.held = 0       # bars that waited and saw their rate published first
        self.late = 0       # bars published without it: wait_s passed
        self.errors = 0     # failed polls (the venue); the gate goes on until wait_s

    def settles_at(self, symbol: str, at_ms: int) -> bool:
        """Whether ``symbol``'s funding settles at ``at_ms``."""
        return at_ms % self.intervals_ms.get(symbol, FUNDING_INTERVAL_MIN * 60_000) == 0

    async def before(self, bars: Sequence[BarClosed]) -> None:
        """Return once the rate settled at each of ``bars``' settlement closes is published, or
        ``wait_s`` after that close."""
        due: dict[str, int] = {}
        for b in bars:
            close = b.open_time_ms + INTERVAL_MS
            if self.settles_at(b.instrument, close):
                due[b.instrument] = max(close, due.get(b.instrument, close))
        for symbol, settle_ms in sorted(due.items()):
            await self._wait_for(symbol, settle_ms)
        if due:
            await self.sleep(ORDER_GAP_S)

    def _published_through(self, symbol: str, settle_ms: int) -> bool | None:
        """True: published; False: not yet; None: no rate of ``symbol`` published at all."""
        last = self.poller.last_published(symbol)
        return None if last is None else last >= settle_ms

    async def _wait_for(self, symbol: str, settle_ms: int) -> None:
        if self._published_through(symbol, settle_ms):
            return
        give_up = time.monotonic() + self.wait_s      # a venue clock that stands still too
        while True:
            try:
                await self.poller.poll_symbol(symbol)
            except (VenueError, TransientError) as e:
                self.errors += 1
                log.warning("ingest.funding_gate_poll_failed", symbol=symbol,
                            error=f"{type(e).__name__}: {e}")
            done = self._published_through(symbol, settle_ms)
            if done is None:
                return
            if done:
                self.held += 1
                self.on_result(symbol, "held")
                return
            since_close_s = (self.clock_ms() - settle_ms) / 1000
            left_s = min(self.wait_s - since_close_s, give_up - time.monotonic())
            if left_s <= 0:
                self.late += 1
                self.on_result(symbol, "late")
                log.warning("ingest.funding_late", symbol=symbol, settle_time_ms=settle_ms,
                            since_close_s=round(since_close_s, 1),
                            consequence="the bar is published with the previous rate known")
                return
            await self.sleep(min(self.retry_s, left_s))
