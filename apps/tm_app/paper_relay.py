"""The paper venue's price feed for ``tm paper``: every ``bar.closed`` on ``md.bar`` is pushed to
the simulator's ``POST /sim/bars`` and every ``funding.rate`` on ``md.funding`` to
``POST /sim/funding`` (the simulator's live feed, :mod:`tm_exchange_sim.live`); every hour the
market's instruments-info goes to ``POST /sim/instruments`` when it changed, and into the run's
instruments file, which a restarted venue and the shadow book read
(:mod:`tm_app.paper_instruments`).

A relay rather than the simulator reading Redis itself: the simulator stays a plain venue that
knows nothing about the mesh (no bus, no namespace, no consumer group), like the exchange it
stands in for. The relay reads ``md.bar`` directly (one hop) while an order needs five (bar,
signal/regime, sizer, risk, executor), so a bar is at the venue before any order it causes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tm_common.bus.streams import MD_BAR, MD_FUNDING
from tm_common.errors import MalformedEvent
from tm_common.events import BarClosed, Envelope, FundingRateUpdated
from tm_common.instruments import InstrumentSpec

from tm_app.paper_instruments import (
    MarketInstrumentsError,
    answer,
    fetch_specs,
    read_answer,
    write_answer,
)


@dataclass
class RelayCounts:
    bars: int = 0
    funding: int = 0
    repushes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    #: symbol → how often the market's instruments-info changed and was given to the venue
    instruments: dict[str, int] = field(default_factory=dict)


class BarRelay:
    """``md.bar`` → ``POST /sim/bars``, ``md.funding`` → ``POST /sim/funding``, in a thread.

    Reads the streams from their start with ``XREAD`` (no consumer group: it is no part of the
    mesh's delivery); a push that fails is retried until it lands. Every ``check_every_s`` it
    checks that the venue was not restarted (:meth:`check_venue`). With ``market_url``, every
    ``instruments_every_s`` it reads the market's instruments-info of ``symbols`` and gives the
    venue what changed (:meth:`follow_instruments`), first writing the whole answer to
    ``instruments_file`` (the one ``tm paper`` wrote at start, if any: what it lists is taken as
    what the venue has)."""

    def __init__(self, redis_url: str, namespace: str, venue_url: str,
                 admin_token: str | None = None, block_ms: int = 1000,
                 check_every_s: float = 5.0, *, market_url: str | None = None,
                 symbols: tuple[str, ...] = (), instruments_every_s: float = 3600.0,
                 instruments_file: Path | None = None) -> None:
        self.redis_url, self.namespace, self.venue_url = redis_url, namespace, venue_url
        self.headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.block_ms, self.check_every_s = block_ms, check_every_s
        self.market_url, self.symbols = market_url, symbols
        self.instruments_every_s = instruments_every_s
        self.counts = RelayCounts()
        self._latest: dict[str, dict] = {}
        self.instruments_file = instruments_file
        # the market's, as the venue has them
        self._listed: dict[str, InstrumentSpec] = \
            (read_answer(instruments_file) if instruments_file else None) or {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="paper-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from tm_common.bus.redis import RedisStreamsBus

        bus = RedisStreamsBus(self.redis_url, prefix=self.namespace)
        cursors: dict[Any, Any] = {bus.key(MD_BAR): "0", bus.key(MD_FUNDING): "0"}
        checked = time.monotonic()
        followed = checked        # the venue started with the market's instruments (tm paper)
        try:
            async with httpx.AsyncClient(base_url=self.venue_url, timeout=10,
                                         headers=self.headers, trust_env=False) as http:
                while not self._stop.is_set():
                    try:
                        resp: Any = await bus.r.xread(cursors, count=1000, block=self.block_ms)
                    except Exception as e:  # noqa: BLE001 - Redis away: retry, keep the cursor
                        self._error(type(e).__name__)
                        await asyncio.sleep(1.0)
                        continue
                    for key, entries in resp or []:
                        bars, rates = _decode(entries)
                        await self._push(http, bars, rates)
                        cursors[_text(key)] = _text(entries[-1][0])
                    if time.monotonic() - checked >= self.check_every_s:
                        checked = time.monotonic()
                        await self.check_venue(http)
                    if self.market_url and time.monotonic() - followed >= \
                            self.instruments_every_s:
                        followed = time.monotonic()
                        await self.follow_instruments(http)
        finally:
            await bus.close()

    async def _push(self, http: httpx.AsyncClient, bars: list[dict], rates: list[dict]) -> None:
        if bars and await self._post(http, "/sim/bars", {"bars": bars}):
            self.counts.bars += len(bars)
            for b in bars:
                self._latest[b["symbol"]] = b
        if rates and await self._post(http, "/sim/funding", {"rates": rates}):
            self.counts.funding += len(rates)

    async def _post(self, http: httpx.AsyncClient, path: str, body: dict) -> bool:
        """Until it lands (the venue may be restarting); ``False`` if refused (400) or stopped."""
        while not self._stop.is_set():
            try:
                r = await http.post(path, json=body)
                if r.status_code == 200:
                    return True
                self._error(f"HTTP {r.status_code}")
                if r.status_code == 400:            # what the venue refuses is never retried
                    return False
            except httpx.HTTPError as e:
                self._error(type(e).__name__)
            await asyncio.sleep(0.5)
        return False

    async def check_venue(self, http: httpx.AsyncClient) -> None:
        """A venue whose clock is behind the newest bar pushed was restarted (it keeps its bars
        in memory): push the newest bar of every symbol again, so that it has marks at once."""
        if not self._latest:
            return
        try:
            clock = (await http.get("/sim/clock")).json()
        except (httpx.HTTPError, ValueError):
            return                                  # down: checked again on the next round
        newest = max(b["open_time_ms"] for b in self._latest.values())
        if clock.get("clock_ms", 0) < newest:
            self.counts.repushes += 1
            if self._listed:     # what it learnt since its start file (or with none) first
                await self._post(http, "/sim/instruments", answer(self._listed))
            await self._post(http, "/sim/bars", {"bars": sorted(
                self._latest.values(), key=lambda b: b["open_time_ms"])})

    async def follow_instruments(self, http: httpx.AsyncClient) -> list[str]:
        """Read the market's instruments-info of the traded symbols and post those that
        changed since the last read (a qty step, a funding interval, a delisting scheduled,
        its status) to the venue's ``POST /sim/instruments``; returns their symbols. The
        venue's risk and executor then see the change on their own refresh, as on Bybit. The
        instruments file is rewritten first (the shadow book's account takes it before its
        next bar time; a venue restarted takes it at start)."""
        assert self.market_url is not None
        try:
            specs = await fetch_specs(self.market_url, self.symbols)
        except (httpx.HTTPError, MarketInstrumentsError) as e:
            self._error(f"instruments: {type(e).__name__}")
            return []
        changed = {s: spec for s, spec in specs.items() if self._listed.get(s) != spec}
        if changed and self.instruments_file is not None:
            try:
                write_answer(self.instruments_file, answer(specs))
            except OSError as e:
                self._error(f"instruments file: {type(e).__name__}")
        if changed and await self._post(http, "/sim/instruments", answer(changed)):
            self._listed.update(changed)
            for sym in changed:
                self.counts.instruments[sym] = self.counts.instruments.get(sym, 0) + 1
        return sorted(changed)

    def _error(self, kind: str) -> None:
        self.counts.errors[kind] = self.counts.errors.get(kind, 0) + 1


def _text(v: bytes | str) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else v


def _decode(entries: list) -> tuple[list[dict], list[dict]]:
    bars, rates = [], []
    for _, raw in entries:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        try:
            body = Envelope.from_fields(fields).body
        except MalformedEvent:
            continue                        # the mesh dead-letters it; the venue never sees it
        if isinstance(body, BarClosed):
            bars.append({"symbol": body.instrument, "open_time_ms": body.open_time_ms,
                         **{k: str(getattr(body, k)) for k in
                            ("open", "high", "low", "close", "volume")}})
        elif isinstance(body, FundingRateUpdated):
            rates.append({"symbol": body.instrument, "settle_time_ms": body.settle_time_ms,
                          "rate": str(body.rate)})
    return bars, rates
