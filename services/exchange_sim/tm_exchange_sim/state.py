"""The sim's mutable state: the matching engine, the replay feed and the replay clock.

``clock_ms`` is the open time of the latest *closed* bar; the venue's time (``now_ms``) is
its close. Advancing the clock closes every grid slot in between, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tm_common.history import BAR_INTERVAL_MS, HistoryBar

from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.feed import ReplayFeed, to_engine_bar
from tm_exchange_sim.matching import DEFAULT_INSTRUMENTS, FeeSchedule, MatchingEngine, SlippageModel


@dataclass(frozen=True, slots=True)
class Step:
    open_ms: int
    bars: dict[str, HistoryBar]


class SimState:
    def __init__(self, settings: ExchangeSimSettings, feed: ReplayFeed | None = None) -> None:
        self.settings = settings
        unknown = [s for s in settings.sim_symbols if s not in DEFAULT_INSTRUMENTS]
        if unknown:
            raise ValueError(f"no instrument specification for {unknown}")
        self.feed = feed or ReplayFeed(settings.sim_symbols, settings.sim_history_dir)
        self.instruments = {s: DEFAULT_INSTRUMENTS[s] for s in settings.sim_symbols}
        self.seed = settings.sim_seed
        self.initial_balance = settings.sim_initial_balance
        self.engine: MatchingEngine
        self.clock_ms = 0
        self.reset(settings.sim_start_ms)

    @property
    def now_ms(self) -> int:
        return self.clock_ms + BAR_INTERVAL_MS

    def reset(self, start_ms: int | None = None, initial_balance: Decimal | None = None,
              seed: int | None = None) -> None:
        if initial_balance is not None:
            self.initial_balance = initial_balance
        if seed is not None:
            self.seed = seed
        s = self.settings
        start = self.feed.align(self.feed.first_ms if start_ms is None else start_ms)
        self.engine = MatchingEngine(
            self.instruments, initial_balance=self.initial_balance,
            fees=FeeSchedule(s.sim_taker_fee_rate, s.sim_maker_fee_rate),
            slippage=SlippageModel(s.sim_slippage_bps), default_leverage=s.sim_default_leverage,
            seed=self.seed, funding_rates=self.feed.funding, now_ms=start)
        self.clock_ms = start
        self._close_slot(start)

    def advance(self, to_ms: int | None = None, steps: int | None = None) -> list[Step]:
        """Close grid slots up to ``to_ms`` (or ``steps`` slots); returns them in order."""
        if to_ms is None:
            to_ms = self.clock_ms + BAR_INTERVAL_MS * (1 if steps is None else steps)
        target = self.feed.align(to_ms)
        if target < self.clock_ms:
            raise ValueError(f"the clock only moves forward: {target} < {self.clock_ms}; "
                             "use POST /sim/reset")
        done = []
        for slot in self.feed.slots_between(self.clock_ms, target):
            done.append(Step(slot, self._close_slot(slot)))
            self.clock_ms = slot
        return done

    def _close_slot(self, open_ms: int) -> dict[str, HistoryBar]:
        bars = self.feed.bars_at(open_ms)
        self.engine.step(open_ms + BAR_INTERVAL_MS,
                         {s: to_engine_bar(b) for s, b in bars.items()})
        return bars

    def last_bar(self, symbol: str) -> HistoryBar | None:
        recent = self.feed.recent(symbol, self.clock_ms, 1)
        return recent[0] if recent else None
