"""The live feed (``TM_SIM_FEED=live``): the sim as a paper venue on live prices.

In this mode the sim loads no history: its marks come from the closed bars pushed to it
(``POST /sim/bars``, e.g. by ``tm paper``'s relay from ``md.bar``), and funding from the settled
rates pushed to it (``POST /sim/funding``). Why pushed and not read from the bus: the sim stays a
plain venue that knows nothing of the mesh (no Redis, no consumer group, no namespace), like the
real venue it stands in for; whoever has live bars can drive it over HTTP.

- A pushed bar closes at its close time for its symbol: resting limit orders are matched
  against it, its close becomes the symbol's mark, and market orders then fill at that mark
  with the same adverse slippage and taker fee as in history mode. A bar not newer than the
  symbol's latest one is a repeat and is ignored (pushes are idempotent, at-least-once is safe).
- Funding: a rate for ``(symbol, settle time T)`` settles as in history mode
  (:meth:`MatchingEngine.step`). ``T`` a bar close (00/08/16 UTC, every 8 h or 4 h interval): on
  the position held at the close of the symbol's bar that ends at ``T``, at that close, whichever
  of the bar and the rate arrives first. ``T`` inside a bar (a 1 or 2 h interval): when the bar
  that holds it arrives, before that bar's fills, on the position held through the bar, at the
  mark then (the previous close), booked at ``T``. A rate older than the symbol's latest bar
  close is stale (the position it was due on is gone) and is counted, not settled. No rate
  pushed: no funding.
- Venue time is the newest bar close, so order and execution times are bar times (as in replay).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from tm_common.history import BAR_INTERVAL_MS, DvolPoint, HistoryBar

from tm_exchange_sim.feed import BarBook, to_engine_bar
from tm_exchange_sim.matching import MatchingEngine


@dataclass(frozen=True, slots=True)
class PushedFunding:
    symbol: str
    settle_time_ms: int
    rate: Decimal


class LiveFeed(BarBook):
    """The bars and funding rates pushed so far: the same read API as the replay feed
    (:class:`BarBook`, and ``funding``) for the market routes; no DVOL."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = list(symbols)
        self.bars: dict[str, dict[int, HistoryBar]] = {s: {} for s in self.symbols}
        self._times: dict[str, list[int]] = {s: [] for s in self.symbols}
        self.funding: dict[str, dict[int, Decimal]] = {s: {} for s in self.symbols}
        self.dvol: list[DvolPoint] = []

    @property
    def first_ms(self) -> int:
        starts = [t[0] for t in self._times.values() if t]
        return min(starts) if starts else 0

    @property
    def last_ms(self) -> int:
        ends = [t[-1] for t in self._times.values() if t]
        return max(ends) if ends else 0

    def latest(self, symbol: str) -> HistoryBar | None:
        times = self._times[symbol]
        return self.bars[symbol][times[-1]] if times else None

    def add(self, symbol: str, bar: HistoryBar) -> bool:
        """Keep ``bar`` if it is newer than the symbol's latest; ``False`` for a repeat."""
        latest = self.latest(symbol)
        if latest is not None and bar.open_time_ms <= latest.open_time_ms:
            return False
        self.bars[symbol][bar.open_time_ms] = bar
        insort(self._times[symbol], bar.open_time_ms)
        return True


@dataclass
class LiveCounts:
    bars: int = 0
    repeats: int = 0
    funding_settled: int = 0
    funding_pending: int = 0
    funding_stale: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class LiveMarket:
    """Applies pushed bars and funding rates to a matching engine (pure: no I/O, no clock)."""

    def __init__(self, feed: LiveFeed, engine: MatchingEngine) -> None:
        self.feed = feed
        self.engine = engine
        self.counts = LiveCounts()
        self._pending: dict[tuple[str, int], Decimal] = {}
        self._settled: set[tuple[str, int]] = set()

    def push_bars(self, bars: Iterable[tuple[str, HistoryBar]]) -> list[tuple[str, HistoryBar]]:
        """Close each new bar on the engine in the order given; returns the bars taken."""
        taken = []
        for symbol, bar in bars:
            before = self.feed.latest(symbol)
            if not self.feed.add(symbol, bar):
                self.counts.repeats += 1
                continue
            self.counts.bars += 1
            taken.append((symbol, bar))
            close = bar.close_time_ms
            self._settle_inside(symbol, None if before is None else before.close_time_ms, close)
            # Symbols arrive interleaved (a backfill sends one symbol's bars, then the next):
            # the venue's time only moves forward, each symbol's bars close in their order.
            self.engine.step(max(self.engine.now_ms, close), {symbol: to_engine_bar(bar)})
            rate = self._pending.pop((symbol, close), None)
            if rate is not None:
                self._settle(symbol, close, rate)
        return taken

    def push_funding(self, rates: Iterable[PushedFunding]) -> list[PushedFunding]:
        """Take ``rates``; returns those not known already (a repeat of a settled or pending
        rate changes nothing)."""
        taken = []
        for r in rates:
            key = (r.symbol, r.settle_time_ms)
            if key in self._settled or key in self._pending:
                continue
            taken.append(r)
            self.feed.funding[r.symbol][r.settle_time_ms] = r.rate
            latest = self.feed.latest(r.symbol)
            close = None if latest is None else latest.close_time_ms
            if close == r.settle_time_ms:
                self._settle(r.symbol, r.settle_time_ms, r.rate)
            elif close is None or r.settle_time_ms > close:
                self._pending[key] = r.rate
                self.counts.funding_pending = len(self._pending)
            else:
                self.counts.funding_stale += 1
        return taken

    def _settle_inside(self, symbol: str, after_ms: int | None, close_ms: int) -> None:
        """The pending rates of ``symbol`` due before ``close_ms``: those after the previous bar
        close (``after_ms``) settle now, before the bar closes; older ones (or any before the
        symbol's first bar, when no position could be held) are stale."""
        due = sorted(t for s, t in self._pending if s == symbol and t < close_ms)
        for t in due:
            rate = self._pending.pop((symbol, t))
            if after_ms is not None and t > after_ms:
                self._settle(symbol, t, rate)
            else:
                self.counts.funding_stale += 1
        self.counts.funding_pending = len(self._pending)

    def _settle(self, symbol: str, time_ms: int, rate: Decimal) -> None:
        self._settled.add((symbol, time_ms))
        self.counts.funding_pending = len(self._pending)
        if self.engine.settle_funding(symbol, rate, at_ms=time_ms):
            self.counts.funding_settled += 1


__all__ = ["BAR_INTERVAL_MS", "LiveFeed", "LiveMarket", "PushedFunding"]
