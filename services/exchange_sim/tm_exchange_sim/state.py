"""The sim's mutable state: the matching engine, the feed and the clock.

``clock_ms`` is the open time of the latest *closed* bar; the venue's time (``now_ms``) is
its close. With the replay feed (``TM_SIM_FEED=history``) advancing the clock closes every grid
slot in between, in order; with the live feed (``live``, :mod:`tm_exchange_sim.live`) the clock
is the newest bar pushed, and :meth:`SimState.push_bars` is the only way it moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from tm_common.history import (
    BAR_INTERVAL_MS,
    HistoryBar,
    HistoryFileError,
    load_bars,
    recorded_instruments,
)
from tm_common.instruments import InstrumentSpec

from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.feed import ReplayFeed, to_engine_bar
from tm_exchange_sim.forming import opening_bar
from tm_exchange_sim.instruments_config import (
    load_instruments_file,
    parse_instruments,
    resolve_instruments,
)
from tm_exchange_sim.journal import Journal
from tm_exchange_sim.live import LiveFeed, LiveMarket, PushedFunding
from tm_exchange_sim.matching import FeeSchedule, Instrument, MatchingEngine, SlippageModel


@dataclass(frozen=True, slots=True)
class Step:
    open_ms: int
    bars: dict[str, HistoryBar]


class SimState:
    def __init__(self, settings: ExchangeSimSettings, feed: ReplayFeed | None = None) -> None:
        self.settings = settings
        self.feed: ReplayFeed | LiveFeed
        if settings.sim_feed == "live":
            self.feed = LiveFeed(settings.sim_symbols)
        else:
            self.feed = feed or ReplayFeed(settings.sim_symbols, settings.sim_history_dir)
        self.market: LiveMarket | None = None
        # a symbol's filters recorded beside its history (<SYMBOL>_instrument.json) come after
        # the instruments file's and before the shared table
        configured = {**recorded_instruments(settings.sim_symbols, settings.sim_history_dir),
                      **(load_instruments_file(settings.sim_instruments_file)
                         if settings.sim_instruments_file else {})}
        self.instruments = resolve_instruments(settings.sim_symbols, configured,
                                               self._reference_price)
        self.seed = settings.sim_seed
        self.initial_balance = settings.sim_initial_balance
        self.engine: MatchingEngine
        self.clock_ms = 0
        # every input that changes the venue from now on (a restarted venue replays it:
        # tm_exchange_sim.restore); None: not kept
        self.journal: Journal | None = None
        self.reset(settings.sim_start_ms)

    def record(self, kind: str, **data: Any) -> None:
        """Journal one input that changed (or was refused by) the venue, if journaling."""
        if self.journal is not None:
            self.journal.append({"kind": kind, **data})

    def replace_instruments(self, doc: object) -> list[str]:
        """Serve (and enforce) new filters for listed symbols from now on, as when Bybit
        changes a qtyStep: ``doc`` is an instruments-info answer, its ``result`` or its
        ``list``; returns the symbols replaced.

        Raises:
            ValueError: not that shape, a malformed entry, or a symbol the sim does not list.
        """
        specs = parse_instruments(doc, source="POST /sim/instruments")
        unknown = sorted(s for s in specs if s not in self.instruments)
        if unknown:
            raise ValueError(f"POST /sim/instruments: the sim does not list {unknown}")
        replaced = self.list_specs(specs)
        self.record("instruments", doc=doc)
        return replaced

    def take_newer(self, specs: Mapping[str, InstrumentSpec]) -> list[str]:
        """Serve those of ``specs`` (of symbols this venue lists) whose filters differ from the
        ones served, compared as instruments-info shows them (a default is explicit there), and
        journal them; returns their symbols. For a newer instruments file: the shadow book's
        paper account follows ``tm paper``'s, and a venue restarted from its journal takes its
        file again, the newest (the journal may end on older filters)."""
        changed = {sym: spec for sym, spec in specs.items()
                   if sym in self.instruments and spec.info() != self.instruments[sym].info()}
        if changed:
            self.list_specs(changed)
            self.record("instruments", doc={"list": [changed[s].info() for s in sorted(changed)]})
        return sorted(changed)

    def list_specs(self, specs: Mapping[str, InstrumentSpec]) -> list[str]:
        """Serve and enforce ``specs`` (listed symbols only) from now on; a delisting already
        past is carried out at once (:meth:`MatchingEngine.list_instrument`). Returns their
        symbols."""
        for sym, spec in specs.items():
            self.instruments[sym] = Instrument.of(spec)
            self.engine.list_instrument(self.instruments[sym])
        return sorted(specs)

    @property
    def now_ms(self) -> int:
        return self.clock_ms + BAR_INTERVAL_MS

    def venue_ms(self, host_ms: int) -> int:
        """The venue's time, which every time field the sim answers follows (the envelope's
        ``time``, order/execution/position/closed-PnL times, WebSocket ``ts``/``creationTime``,
        pong): the close of the latest closed bar (history: the replay clock; live: the newest
        pushed bar), or ``host_ms`` (the host clock) before a live venue's first bar."""
        return self.now_ms if self.clock_ms else host_ms

    def reset(self, start_ms: int | None = None, initial_balance: Decimal | None = None,
              seed: int | None = None) -> None:
        if initial_balance is not None:
            self.initial_balance = initial_balance
        if seed is not None:
            self.seed = seed
        s = self.settings
        if isinstance(self.feed, LiveFeed):
            if start_ms is not None:
                raise ValueError("the live feed has no start time: its clock is the newest bar "
                                 "pushed to POST /sim/bars")
            self.engine = MatchingEngine(
                self.instruments, initial_balance=self.initial_balance,
                fees=FeeSchedule(s.sim_taker_fee_rate, s.sim_maker_fee_rate),
                slippage=SlippageModel(s.sim_slippage_bps),
                default_leverage=s.sim_default_leverage, seed=self.seed, funding_rates={},
                now_ms=self.feed.last_ms + BAR_INTERVAL_MS if self.feed.last_ms else 0)
            for symbol in self.feed.symbols:      # a fresh account keeps the current marks
                latest = self.feed.latest(symbol)
                if latest is not None:
                    self.engine.marks[symbol] = to_engine_bar(latest).close
            self.market = LiveMarket(self.feed, self.engine)
            self.clock_ms = self.feed.last_ms
            self._recorded_reset(start_ms, initial_balance, seed)
            return
        start = self.feed.align(self.feed.first_ms if start_ms is None else start_ms)
        self.engine = MatchingEngine(
            self.instruments, initial_balance=self.initial_balance,
            fees=FeeSchedule(s.sim_taker_fee_rate, s.sim_maker_fee_rate),
            slippage=SlippageModel(s.sim_slippage_bps), default_leverage=s.sim_default_leverage,
            seed=self.seed, funding_rates=self.feed.funding, now_ms=start)
        self.clock_ms = start
        self._close_slot(start)
        self._recorded_reset(start_ms, initial_balance, seed)

    def _recorded_reset(self, start_ms: int | None, initial_balance: Decimal | None,
                        seed: int | None) -> None:
        self.record("reset", start_ms=start_ms, seed=seed,
                    initial_balance=None if initial_balance is None else str(initial_balance))

    def transfer(self, amount: Decimal | int | float | str) -> Decimal:
        """Deposit (> 0) or withdraw (< 0) USDT (:meth:`MatchingEngine.transfer`), journaled
        with its outcome, refused ones too (a restarted venue must refuse them again): returns
        the amount booked.

        Raises:
            ValueError: refused; nothing changed.
        """
        outcome = "error"
        try:
            booked = self.engine.transfer(amount)
            outcome = "ok"
            return booked
        except ValueError:
            outcome = "refused"
            raise
        finally:
            self.record("transfer", amount=str(amount), outcome=outcome)

    def advance(self, to_ms: int | None = None, steps: int | None = None) -> list[Step]:
        """Close grid slots up to ``to_ms`` (or ``steps`` slots); returns them in order."""
        if isinstance(self.feed, LiveFeed):
            raise ValueError("the live feed's clock follows the bars pushed to POST /sim/bars")
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
        self.record("clock", to_ms=to_ms, steps=None)
        return done

    def push_bars(self, bars: list[tuple[str, HistoryBar]]) -> list[Step]:
        """Live feed: close the new bars among ``bars`` (``(symbol, bar)``, oldest first per
        symbol); returns them as steps (one per open time, in push order) for the WebSocket."""
        market = self._live_market()
        unknown = sorted({s for s, _ in bars if s not in self.instruments})
        if unknown:
            raise ValueError(f"not a symbol of this venue: {unknown}")
        steps: dict[int, dict[str, HistoryBar]] = {}
        for symbol, bar in market.push_bars(bars):
            steps.setdefault(bar.open_time_ms, {})[symbol] = bar
            self.clock_ms = max(self.clock_ms, bar.open_time_ms)
        if steps:                     # the input as given (only repeats: it changed nothing)
            self.record("bars", bars=[[s, asdict(b)] for s, b in bars])
        return [Step(t, b) for t, b in steps.items()]

    def push_funding(self, rates: list[PushedFunding]) -> None:
        """Live feed: settled funding rates (see :mod:`tm_exchange_sim.live`)."""
        market = self._live_market()
        unknown = sorted({r.symbol for r in rates if r.symbol not in self.instruments})
        if unknown:
            raise ValueError(f"not a symbol of this venue: {unknown}")
        if taken := market.push_funding(rates):    # repeats (a relay pushing again): nothing
            self.record("funding", rates=[[r.symbol, r.settle_time_ms, str(r.rate)]
                                          for r in taken])

    def _live_market(self) -> LiveMarket:
        if self.market is None:
            raise ValueError("this venue replays history (TM_SIM_FEED=history): it takes no "
                             "pushed bars; advance it with POST /sim/clock")
        return self.market

    def _close_slot(self, open_ms: int) -> dict[str, HistoryBar]:
        assert isinstance(self.feed, ReplayFeed)
        bars = self.feed.bars_at(open_ms)
        self.engine.step(open_ms + BAR_INTERVAL_MS,
                         {s: to_engine_bar(b) for s, b in bars.items()})
        return bars

    def _reference_price(self, symbol: str) -> Decimal | None:
        """The first close of ``symbol``'s history (what derived filters scale with)."""
        if isinstance(self.feed, ReplayFeed):
            first = self.feed.first(symbol)
            return Decimal(first.close) if first is not None else None
        try:
            rows = load_bars(symbol, directory=self.settings.sim_history_dir)
        except HistoryFileError:
            return None
        return Decimal(rows[0].close) if rows else None

    def next_open(self, symbol: str, open_ms: int) -> str | None:
        """The open of ``symbol``'s bar after the one opening at ``open_ms``, when the feed has
        it (the next bar's first trade; ``None`` for the live feed or past the history)."""
        nxt = self.feed.bars.get(symbol, {}).get(open_ms + BAR_INTERVAL_MS)
        return nxt.open if nxt is not None else None

    def forming_bar(self, symbol: str) -> HistoryBar | None:
        """The bar forming at the venue's time, at its first instant (see
        :mod:`tm_exchange_sim.forming`); ``None`` before the symbol's first bar."""
        last = self.last_bar(symbol)
        if last is None:
            return None
        return opening_bar(self.now_ms, self.next_open(symbol, self.clock_ms) or last.close)

    def last_bar(self, symbol: str) -> HistoryBar | None:
        recent = self.feed.recent(symbol, self.clock_ms, 1)
        return recent[0] if recent else None
