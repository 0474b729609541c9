"""Replay of history: shipped files (or any bar list), lockstep or paced.

Lockstep: publish the DVOL that became known by bar t's close, wait until the pipeline is idle,
publish bar t of every instrument, wait until the pipeline has finished it, then t+1. The wait is a
:class:`PipelineProbe`; until the portfolio exists, "finished" means every consumer group on every
stream has no lag and nothing pending (atomic commits make that a true quiescence test: a chain in
progress always leaves an entry pending or undelivered somewhere).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from typing import Protocol

from tm_common.bus import Bus
from tm_common.bus.streams import ALL_STREAMS
from tm_common.events import BarClosed, DvolUpdated, FundingRateUpdated
from tm_common.history import HistoryFileError, load_bars, load_dvol, load_funding

from tm_ingest.domain.bars import INTERVAL_MS, make_bar
from tm_ingest.publisher import BarPublisher


class PipelineProbe(Protocol):
    async def wait_done(self, bar_time_ms: int) -> None:
        """Return once the pipeline has finished everything published so far."""


class PipelineStalled(RuntimeError):
    """Lockstep waited longer than its timeout: a consumer is down or stuck."""


class GroupsIdleProbe:
    """Done when every consumer group of every stream has lag 0 and pending 0."""

    def __init__(self, bus: Bus, streams: Sequence[str] = ALL_STREAMS, *, poll_s: float = 0.0005,
                 timeout_s: float = 120.0) -> None:
        self.bus, self.streams, self.poll_s, self.timeout_s = bus, tuple(streams), poll_s, timeout_s

    async def busy(self) -> list[str]:
        fast = getattr(self.bus, "busy_groups", None)
        if fast is not None:
            return await fast(self.streams)
        out = []
        for s in self.streams:
            for g in await self.bus.group_info(s):
                if g["lag"] or g["pending"]:
                    out.append(f"{s}/{g['name']} lag={g['lag']} pending={g['pending']}")
        return out

    async def wait_done(self, bar_time_ms: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        poll = self.poll_s
        while True:
            busy = await self.busy()
            if not busy:
                return
            if time.monotonic() > deadline:
                raise PipelineStalled(f"bar {bar_time_ms}: pipeline not idle after "
                                      f"{self.timeout_s:.0f}s: {'; '.join(busy)}")
            await asyncio.sleep(poll)
            poll = min(poll * 1.5, 0.005)


def history_bars(symbols: Sequence[str], start_ms: int | None, end_ms: int | None,
                 directory=None) -> list[BarClosed]:
    """Shipped bars of ``symbols`` in the window as ``BarClosed`` (source "replay")."""
    out = []
    for sym in symbols:
        for b in load_bars(sym, start_ms, end_ms, directory=directory):
            out.append(make_bar(sym, b.open_time_ms, b.open, b.high, b.low, b.close, b.volume,
                                source="replay"))
    return out


class HistoryBars:
    """The shipped bars of ``symbols`` in a window, as :func:`history_bars` gives them (sorted by
    bar time, then instrument) but made one at a time while they are iterated: a replay of the
    whole history holds the files' text (cached once per process) and the bar time in hand, not
    a second copy of every bar as an event (about 18 MiB for three instruments' full history:
    the difference between ingest's peak memory and its budget)."""

    def __init__(self, symbols: Sequence[str], start_ms: int | None, end_ms: int | None,
                 directory=None) -> None:
        self._rows = {sym: load_bars(sym, start_ms, end_ms, directory=directory)
                      for sym in sorted(symbols)}

    def bar_times(self) -> int:
        """How many distinct bar times the window holds."""
        return len({b.open_time_ms for rows in self._rows.values() for b in rows})

    def __iter__(self) -> Iterator[BarClosed]:
        def of(sym: str) -> Iterator[tuple[int, str, int]]:
            return ((b.open_time_ms, sym, i) for i, b in enumerate(self._rows[sym]))
        for _t, sym, i in heapq.merge(*(of(s) for s in self._rows)):
            b = self._rows[sym][i]
            yield make_bar(sym, b.open_time_ms, b.open, b.high, b.low, b.close, b.volume,
                           source="replay")


def history_dvol(start_ms: int | None, end_ms: int | None, directory=None) -> list[DvolUpdated]:
    """Shipped BTC DVOL known in the window; none when the history folder has no DVOL file (a
    folder of other instruments: the DVOL features stay NaN, as in training)."""
    try:
        pts = load_dvol("BTC", directory=directory)
    except HistoryFileError:
        return []
    return [DvolUpdated(currency="BTC", day_ms=p.day_ms, known_at_ms=p.known_at_ms,
                        value=float(Decimal(p.close)))
            for p in pts if (start_ms is None or p.known_at_ms >= start_ms - 86_400_000)
            and (end_ms is None or p.known_at_ms <= end_ms + INTERVAL_MS)]


FUNDING_INTERVAL_MS = 8 * 3600 * 1000


def history_funding(symbols: Sequence[str], start_ms: int | None, end_ms: int | None,
                    directory=None) -> list[FundingRateUpdated]:
    """Shipped funding of ``symbols`` (source "replay") settled in the window: from one funding
    interval before ``start_ms`` (the rate in force at the first bar) to the last bar's close. A
    symbol without a funding file has none (its funding features stay NaN, as in training)."""
    out: list[FundingRateUpdated] = []
    for sym in symbols:
        try:
            rates = load_funding(sym, directory=directory)
        except HistoryFileError:
            continue
        out.extend(FundingRateUpdated(instrument=sym, settle_time_ms=f.time_ms,
                                      rate=f.rate_decimal, source="replay")
                   for f in rates
                   if (start_ms is None or f.time_ms >= start_ms - FUNDING_INTERVAL_MS)
                   and (end_ms is None or f.time_ms <= end_ms + INTERVAL_MS))
    return out


@dataclass
class ReplayProgress:
    step: int
    steps: int
    bar_time_ms: int
    published: int


class ReplaySource:
    """Publishes ``bars`` (and ``dvol``) in time order through ``publisher``.

    A funding rate or DVOL value is published before the first bar whose close is at or after
    the time it became known (settle time, ``known_at_ms``), never earlier.
    ``probe`` given → lockstep; else ``pace_s`` seconds between bar times (0 = as fast as
    possible). ``before_step(t)`` runs before bar time t is published (the replay moves the
    venue's clock there, so orders for bar t fill at its close). Resumable: the publisher's
    exactly-once state skips what a previous run published.
    """

    def __init__(self, publisher: BarPublisher, bars: Iterable[BarClosed],
                 dvol: Iterable[DvolUpdated] = (), *,
                 funding: Iterable[FundingRateUpdated] = (), probe: PipelineProbe | None = None,
                 pace_s: float = 0.0,
                 on_progress: Callable[[ReplayProgress], Awaitable[None] | None] | None = None,
                 should_stop: Callable[[], bool] = lambda: False,
                 before_step: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.publisher, self.probe, self.pace_s = publisher, probe, pace_s
        # HistoryBars come sorted and are made while iterated; any other iterable is sorted here
        self.bars: Iterable[BarClosed] = bars if isinstance(bars, HistoryBars) else \
            sorted(bars, key=lambda b: (b.open_time_ms, b.instrument))
        self.dvol = sorted(dvol, key=lambda d: d.known_at_ms)
        self.funding = sorted(funding, key=lambda f: (f.settle_time_ms, f.instrument))
        self.on_progress, self.should_stop = on_progress, should_stop
        self.before_step = before_step

    def _bar_times(self) -> int:
        if isinstance(self.bars, HistoryBars):
            return self.bars.bar_times()
        return len({b.open_time_ms for b in self.bars})

    async def run(self) -> int:
        total = self._bar_times()
        di, fi, published = 0, 0, 0
        for i, (t, bar_time) in enumerate(groupby(self.bars, key=lambda b: b.open_time_ms)):
            if self.should_stop():
                break
            group = list(bar_time)
            close_ms = t + INTERVAL_MS
            if self.before_step is not None:
                await self.before_step(t)       # e.g. move the venue's clock to bar t's close
            known = []
            while di < len(self.dvol) and self.dvol[di].known_at_ms <= close_ms:
                known.append(self.dvol[di])
                di += 1
            settled = []
            while fi < len(self.funding) and self.funding[fi].settle_time_ms <= close_ms:
                settled.append(self.funding[fi])
                fi += 1
            side = bool(known and await self.publisher.publish_dvol(known))
            side = bool(settled and await self.publisher.publish_funding(settled)) or side
            if side and self.probe:
                await self.probe.wait_done(t)   # DVOL and funding first: consumers see them before bar t
            published += len(await self.publisher.publish_bars(group))
            if self.probe is not None:
                await self.probe.wait_done(t)
            elif self.pace_s:
                await asyncio.sleep(self.pace_s)
            if self.on_progress is not None:
                r = self.on_progress(ReplayProgress(i + 1, total, t, published))
                if asyncio.iscoroutine(r):
                    await r
        return published
