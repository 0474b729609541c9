"""Live bars from Bybit's public WebSocket (``kline.240.<symbol>``, linear channel).

Only ``confirm: true`` klines are bars. An application ping goes every ``ping_s`` (Bybit drops
idle connections after ~30 s). On every (re)connect a REST backfill runs from the newest published
bar to the venue's now, before any live message is handled, and a live bar that leaves a hole
behind it first backfills the hole: bars are published in order, none missing, none twice.

The connection is watched (the pieces shared with the executor's private socket are in
:mod:`tm_common.ws_watch`):

- **read deadline**: a connection on which nothing arrives (no kline, no pong, no answer) for
  ``deadline_pings`` × ``ping_s`` seconds is half-open (a NAT or proxy dropped it without a FIN):
  it is closed and a new one opened (:class:`ReadDeadlineExceeded`);
- **subscribe acknowledgement**: the venue must answer the subscribe with ``success: true``
  within the same deadline; a refusal (:class:`SubscribeRefused`, e.g. an unknown symbol) or no
  answer closes the connection, counted and logged, and the source retries with backoff;
- **ended listings**: before it subscribes, each connection reads the symbols' instruments-info
  (:meth:`BybitRestClient.listings`); a symbol whose listing has ended (delisted, being
  delisted, or listed in no status while the venue lists the others) is neither subscribed
  (Bybit refuses a topic it does not serve, and a refused subscribe would stop every symbol's
  bars) nor backfilled (its klines are refused too), and is named in ``ended`` (logged once,
  shown on ``/status``). When instruments-info does not answer, every symbol is subscribed as
  before;
- **funding first**: ``before_publish`` (the :class:`~tm_ingest.sources.funding_gate.FundingGate`)
  runs before each publication of bars, so a bar closing at a funding settlement follows its
  rate on the bus; the funding intervals it needs come from the same instruments-info read
  (``funding_interval_ms``);
- **jittered backoff**: a reconnect waits ``backoff`` × a random factor in [0.5, 1] (equal
  jitter), doubling up to ``backoff_s[1]`` while connections fail before delivering anything, so
  many ingest replicas dropped together do not reconnect in lockstep.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
import websockets
from tm_common.errors import TransientError
from tm_common.events import BarClosed
from tm_common.ws_watch import (  # noqa: F401 - ReadDeadlineExceeded re-exported
    ReadDeadlineExceeded,
    SubscribeRefused,
    jittered,
    recv_within,
)

from tm_ingest.domain.bars import INTERVAL_MS, BadBar, from_ws_kline
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.rest import BybitRestClient

log = structlog.get_logger("tm.ingest.live")
BACKFILL_AHEAD_MS = 24 * 3600 * 1000


class LiveCounters:
    """Counts for metrics and /status (the app maps them to Prometheus)."""

    def __init__(self) -> None:
        self.connects = 0
        self.disconnects = 0
        self.bad_frames = 0
        self.backfilled = 0
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class LiveSource:
    """``deadline_pings``: the read deadline in ping intervals (≥ 2: one pong may be late);
    ``rng``: the backoff jitter's source (seeded in tests); ``before_publish``: awaited with
    each batch of bars before it is published; ``funding_interval_ms``: filled from
    instruments-info at each connection (symbol → ms)."""

    def __init__(self, ws_url: str, rest: BybitRestClient, publisher: BarPublisher,
                 symbols: Sequence[str], *, backfill_bars: int = 200,
                 backfill_start_ms: int | None = None, ping_s: float = 20.0,
                 deadline_pings: float = 3.0,
                 backoff_s: tuple[float, float] = (0.2, 30.0),
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 rng: random.Random | None = None,
                 before_publish: Callable[[Sequence[BarClosed]], Awaitable[None]] | None = None,
                 funding_interval_ms: dict[str, int] | None = None) -> None:
        self.ws_url, self.rest, self.publisher = ws_url, rest, publisher
        self.before_publish = before_publish
        self.funding_interval_ms = {} if funding_interval_ms is None else funding_interval_ms
        self.symbols = [s.upper() for s in symbols]
        self.backfill_bars, self.backfill_start_ms = backfill_bars, backfill_start_ms
        self.ping_s, self.backoff_s, self.clock_ms = ping_s, backoff_s, clock_ms
        self.read_deadline_s = deadline_pings * ping_s
        self.rng = rng or random.Random()
        self.counters = LiveCounters()
        self.connected = False
        self.subscribed = False          # the venue acknowledged this connection's subscribe
        self.ended: dict[str, str] = {}   # symbol → why: its listing has ended, not subscribed
        self.retry_waits_s: list[float] = []     # the last reconnect waits (jittered), newest last
        self._delivered = False          # this connection delivered a kline: it was healthy
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        backoff = self.backoff_s[0]
        while not self._stop.is_set():
            self._delivered = False
            try:
                await self._session()
                backoff = self.backoff_s[0]
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException, TransientError) as e:
                if self._delivered:
                    # A drop after a working connection is a new incident: retry soon. Only
                    # connections that fail before any data back off further and further.
                    backoff = self.backoff_s[0]
                self.counters.error(type(e).__name__)
                log.warning("ingest.live_disconnected", error=f"{type(e).__name__}: {e}",
                            retry_in_s=round(backoff, 2))
            finally:
                if self.connected:
                    self.counters.disconnects += 1
                self.connected = self.subscribed = False
            if self._stop.is_set():
                break
            wait_s = jittered(backoff, self.rng)
            self.retry_waits_s = [*self.retry_waits_s[-99:], wait_s]
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=wait_s)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.backoff_s[1])

    async def _session(self) -> None:
        async with websockets.connect(self.ws_url, ping_interval=None, open_timeout=10,
                                      close_timeout=2, max_size=2**22) as ws:
            self.connected = True
            self.counters.connects += 1
            await self._check_listings()
            active = [s for s in self.symbols if s not in self.ended]
            if not active:
                raise TransientError(f"every configured symbol's listing has ended: {self.ended}")
            await ws.send(json.dumps({"op": "subscribe",
                                      "args": [f"kline.240.{s}" for s in active]}))
            await self.backfill_all()
            pinger = asyncio.create_task(self._ping(ws))
            stopper = asyncio.create_task(self._stop.wait())
            ack_by = time.monotonic() + self.read_deadline_s
            try:
                while True:
                    raw = await recv_within(
                        ws, stopper, self.read_deadline_s,
                        f"{self.read_deadline_s / self.ping_s:g} ping intervals")
                    if raw is None:
                        return
                    await self.on_message(raw)
                    if not self.subscribed and time.monotonic() > ack_by:
                        raise ReadDeadlineExceeded(
                            f"no subscribe acknowledgement within {self.read_deadline_s:.1f} s")
            finally:
                pinger.cancel()
                stopper.cancel()

    async def _ping(self, ws) -> None:
        while True:
            await asyncio.sleep(self.ping_s)
            await ws.send(json.dumps({"op": "ping"}))

    async def _check_listings(self) -> None:
        """Refresh :attr:`ended` from instruments-info; kept as it was when it does not answer
        (a venue without it, or a passing failure: the subscribe then tells)."""
        try:
            listings = await self.rest.listings(self.symbols, self.clock_ms())
        except TransientError as e:
            self.counters.error("instruments_info")
            log.warning("ingest.listings_unknown", error=f"{type(e).__name__}: {e}")
            return
        ended = listings.ended
        for sym in sorted(ended.keys() - self.ended.keys()):
            log.warning("ingest.listing_ended", symbol=sym, why=ended[sym],
                        action="not subscribed; remove it from TM_SYMBOLS")
        self.ended = ended
        self.funding_interval_ms.update(listings.funding_interval_ms)

    async def _publish(self, bars: Sequence[BarClosed]) -> list[BarClosed]:
        if bars and self.before_publish is not None:
            await self.before_publish(bars)
        return await self.publisher.publish_bars(bars)

    async def backfill_all(self) -> None:
        # the range reaches a day past our clock: whether a bar has closed is the venue's call
        # (BybitRestClient.fetch), so a host clock behind the venue's holds nothing back
        now = self.clock_ms()
        for sym in [s for s in self.symbols if s not in self.ended]:
            last = self.publisher.last_published(sym)
            if last is not None:
                start = last + INTERVAL_MS
            elif self.backfill_start_ms is not None:
                start = self.backfill_start_ms
            else:
                start = (now // INTERVAL_MS - self.backfill_bars) * INTERVAL_MS
            bars = await self.rest.fetch(sym, start, now + BACKFILL_AHEAD_MS, now)
            published = await self._publish(bars)
            self.counters.backfilled += len(published)
            if published:
                log.info("ingest.backfilled", symbol=sym, bars=len(published),
                         first=published[0].open_time_ms, last=published[-1].open_time_ms)

    async def on_message(self, raw: str | bytes) -> None:
        """Handle one frame; malformed frames are counted and logged, never raised.

        Raises:
            SubscribeRefused: the venue refused the subscription (the connection is retried).
        """
        try:
            msg = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._bad(f"not JSON: {str(raw)[:80]!r}")
        if not isinstance(msg, dict):
            return self._bad(f"not an object: {str(raw)[:80]!r}")
        if "op" in msg:
            if msg.get("op") == "subscribe":
                if msg.get("success") is not True:
                    log.error("ingest.subscribe_failed", ret_msg=msg.get("ret_msg"))
                    raise SubscribeRefused(f"subscribe refused: {str(msg.get('ret_msg'))[:200]}")
                self.subscribed = True
            return None
        topic = msg.get("topic")
        if not isinstance(topic, str) or not topic.startswith("kline."):
            return self._bad(f"unexpected topic {topic!r}")
        sym = topic.rsplit(".", 1)[-1]
        if sym not in self.symbols:
            return self._bad(f"unsubscribed symbol {sym!r}")
        self._delivered = True
        data = msg.get("data")
        if not isinstance(data, list):
            return self._bad(f"{topic}: data is not a list")
        for item in data:
            if not isinstance(item, dict):
                self._bad(f"{topic}: item is not an object")
                continue
            if item.get("confirm") is not True:
                continue
            try:
                bar = from_ws_kline(sym, item)
            except BadBar as e:
                self._bad(str(e))
                continue
            await self.on_bar(bar)
        return None

    async def on_bar(self, bar: BarClosed) -> None:
        missing = self.publisher.tracker.missing_before(bar)
        bars = [bar]
        if missing:
            # A confirmed bar proves every bar before it has closed, whatever our clock says.
            now = max(self.clock_ms(), bar.open_time_ms)
            fetched = await self.rest.fetch(bar.instrument, missing[0], missing[-1], now)
            self.counters.backfilled += len(fetched)
            bars = fetched + bars
        await self._publish(bars)

    def _bad(self, reason: str) -> None:
        self.counters.bad_frames += 1
        log.warning("ingest.bad_frame", reason=reason)
