"""The replay feed: shipped history (``tm_common.history``) on a regular 4h grid.

The grid has a slot for every 4h step between the first and the last bar, including slots
where a symbol has no bar (the 2023-03-24 12:00 gap): the clock still passes them, so funding
due at their close is settled and no bar is invented.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from decimal import Decimal
from pathlib import Path

from tm_common.history import (
    BAR_INTERVAL_MS,
    DvolPoint,
    HistoryBar,
    HistoryFileError,
    load_bars,
    load_dvol,
    load_funding,
)

from tm_exchange_sim.matching.models import Bar


def to_engine_bar(bar: HistoryBar) -> Bar:
    return Bar(open_time_ms=bar.open_time_ms, close_time_ms=bar.close_time_ms,
               open=Decimal(bar.open), high=Decimal(bar.high), low=Decimal(bar.low),
               close=Decimal(bar.close), volume=Decimal(bar.volume))


class BarBook:
    """The read API the market routes use (``klines``, ``recent``, ``bars_at``, ``dvol_known``)
    over ``bars`` (symbol → open time → bar), ``_times`` (each symbol's sorted open times) and
    ``dvol``; the replay and the live feed differ only in how these are filled."""

    symbols: list[str]
    bars: dict[str, dict[int, HistoryBar]]
    _times: dict[str, list[int]]
    dvol: list[DvolPoint]

    def first(self, symbol: str) -> HistoryBar | None:
        """``symbol``'s oldest bar (``None`` when it has none)."""
        times = self._times.get(symbol)
        return self.bars[symbol][times[0]] if times else None

    def bars_at(self, open_ms: int) -> dict[str, HistoryBar]:
        return {s: self.bars[s][open_ms] for s in self.symbols if open_ms in self.bars[s]}

    def klines(self, symbol: str, until_open_ms: int, start_ms: int | None,
               end_ms: int | None, limit: int) -> list[HistoryBar]:
        """Closed bars up to the clock, inside [start, end] by open time, newest first."""
        times = self._times[symbol]
        hi_time = until_open_ms if end_ms is None else min(end_ms, until_open_ms)
        hi = bisect_right(times, hi_time)
        lo = 0 if start_ms is None else bisect_left(times, start_ms)
        lo = max(lo, hi - limit)
        return [self.bars[symbol][t] for t in reversed(times[lo:hi])]

    def recent(self, symbol: str, until_open_ms: int, count: int) -> list[HistoryBar]:
        return self.klines(symbol, until_open_ms, None, None, count)

    def dvol_known(self, now_ms: int, start_ms: int, end_ms: int) -> list[DvolPoint]:
        """DVOL rows whose day has closed by ``now_ms`` (no look-ahead), day in [start, end]."""
        return [p for p in self.dvol if p.known_at_ms <= now_ms and start_ms <= p.day_ms <= end_ms]


class ReplayFeed(BarBook):
    def __init__(self, symbols: list[str], directory: str | Path | None = None) -> None:
        self.symbols = list(symbols)
        self.bars: dict[str, dict[int, HistoryBar]] = {}
        self._times: dict[str, list[int]] = {}
        for symbol in self.symbols:
            rows = load_bars(symbol, directory=directory)
            self.bars[symbol] = {b.open_time_ms: b for b in rows}
            self._times[symbol] = [b.open_time_ms for b in rows]
        starts = [t[0] for t in self._times.values() if t]
        ends = [t[-1] for t in self._times.values() if t]
        if not starts:
            raise HistoryFileError(f"no bars for {self.symbols}")
        self.first_ms, self.last_ms = min(starts), max(ends)
        self.funding: dict[str, dict[int, Decimal]] = {}
        for symbol in self.symbols:
            try:
                self.funding[symbol] = {f.time_ms: f.rate_decimal
                                        for f in load_funding(symbol, directory=directory)}
            except HistoryFileError:
                self.funding[symbol] = {}
        try:
            self.dvol: list[DvolPoint] = load_dvol("BTC", directory=directory)
        except HistoryFileError:
            self.dvol = []

    def align(self, time_ms: int) -> int:
        """``time_ms`` must be a grid slot (a 4h bar open time) inside the history."""
        if (time_ms - self.first_ms) % BAR_INTERVAL_MS or not \
                self.first_ms <= time_ms <= self.last_ms:
            raise ValueError(f"{time_ms} is not a 4h bar open time in "
                             f"[{self.first_ms}, {self.last_ms}]")
        return time_ms

    def slots_between(self, after_ms: int, until_ms: int) -> list[int]:
        """Grid slots in ``(after_ms, until_ms]``."""
        return list(range(after_ms + BAR_INTERVAL_MS, until_ms + 1, BAR_INTERVAL_MS))
