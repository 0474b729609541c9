"""The sizer's state machine: join signal + regime + bar per (instrument, bar time), then size.

Pure and deterministic: outputs depend only on the state and the inputs, never on a clock.

**Join.** A decision for ``(instrument, T)`` needs that bar's signal, its regime and its bar
(``md.bar``: the last three returns and the paper book of the observation, and the outcome that
feeds the rolling win/loss ratio). It is made as soon as all three are in. The wait is bounded
without a clock:

- an input of a *later* bar time for the same instrument flushes every earlier pending bar of it
  first (a bar with its signal is decided with what is there; the regime, if missing, is the last
  one known, with ``regime_stale`` set; a bar without a signal is dropped and counted);
- live only, the service's timer appends a flush command for a join pending too long in wall time
  (``tm_sizer.commands``), which the handler applies like any other input, through
  :meth:`SizerEngine.flush`. That command is an event in the stream, so a replay of the stream
  gives the same decisions.

In lockstep replay the three inputs of bar T always arrive before any input of bar T+1, so the
join is always complete and neither path fires: the mesh replay equals the in-process backtest.

Inputs of a bar time at or before the instrument's last decision are late: counted, not used
(a late bar still updates the close used for the next return).

**Breaker.** A ``risk.breaker`` transition carries the close of the bar at which risk decided it
(a trip on bar T's snapshot: T's close) and rules the decisions of bars that close after it
(:meth:`SizerEngine.breaker_at`). Risk's trip at T's snapshot and T's signal reach the sizer in
either order; by the close stamps, T is decided with the state before the trip and T+1 with the
trip, whatever the order (risk itself refuses T's target once OPEN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tm_common.bar_signal import BarSignal
from tm_quant.sizing.cascade import CascadeInput, CascadeThresholds, Decision, decide
from tm_quant.sizing.kelly import KellyParams, kelly_fraction, win_loss_ratio
from tm_quant.sizing.observation import N_RETURNS, PaperBook, build_observation

from tm_sizer.domain.policy import RLPolicy

#: breaker transitions kept for :meth:`SizerEngine.breaker_at`; older ones fold into the state
#: before them (decisions lag transitions by a bar or two, not by dozens of transitions)
MAX_BREAKER_LOG = 64


@dataclass(frozen=True)
class SizerParams:
    """``cost_rate``: fee + slippage per unit of notional traded (paper book); ``require_bar``:
    the join also waits for the bar (off only for tests of the two-way join)."""

    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    kelly: KellyParams = field(default_factory=KellyParams)
    thresholds: CascadeThresholds = field(default_factory=CascadeThresholds)
    cost_rate: float = 0.00075
    require_bar: bool = True


# The signal of one bar, as the signal service decided it (positional: instrument, bar_time_ms,
# direction, probability, confidence, live_ic, ts_event_ns).
SignalIn = BarSignal


@dataclass(frozen=True)
class RegimeIn:
    instrument: str
    bar_time_ms: int
    label: str
    probabilities: tuple[float, float, float, float]
    volatility: float


@dataclass(frozen=True)
class SizedOut:
    """One decision, ready to become a ``PositionSized``."""

    instrument: str
    bar_time_ms: int
    decision: Decision
    regime: str | None
    regime_stale: bool
    policy_version: str
    ts_event_ns: int
    win_loss_ratio: float

    @property
    def correlation_id(self) -> str:
        return f"{self.instrument}:{self.bar_time_ms}"


@dataclass
class Result:
    """Decisions made by one input, and notes for metrics (``late:<what>``, ``dropped:<why>``,
    ``stale:<cause>``)."""

    outs: list[SizedOut] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: Result) -> None:
        self.outs += other.outs
        self.notes += other.notes


@dataclass
class Pending:
    signal: dict[str, Any] | None = None
    regime: dict[str, Any] | None = None
    close: float | None = None


@dataclass
class InstrumentState:
    pending: dict[int, Pending] = field(default_factory=dict)
    last_close: tuple[int, float] | None = None
    returns: list[float] = field(default_factory=list)       # log returns, newest first
    outcomes: list[float] = field(default_factory=list)      # direction * simple return
    last_direction: int = 0
    last_decided_ms: int | None = None
    last_regime: dict[str, Any] | None = None
    book: PaperBook = field(default_factory=PaperBook)


class SizerEngine:
    """Per-instrument joins, paper books and the cascade, plus the global breaker/equity view.

    ``policy`` (an :class:`RLPolicy` or None) is attached by the handler; ``policy_version``
    survives snapshots so a restart re-attaches the same version.
    """

    def __init__(self, params: SizerParams | None = None) -> None:
        self.params = params or SizerParams()
        self.policy: RLPolicy | None = None
        self.restore(None)

    # -- state -----------------------------------------------------------------------------
    def restore(self, data: dict[str, Any] | None) -> None:
        d = data or {}
        self.breaker_state: str | None = d.get("breaker_state")
        # transitions (close ns, state), oldest first; the state before the first of them
        self.breaker_log: list[tuple[int, str]] = [(int(t), str(x)) for t, x in d.get("breaker_log", [])]
        self.breaker_before: str | None = d.get("breaker_before", None if "breaker_log" in d
                                                else self.breaker_state)
        self.equity: str | None = d.get("equity")
        self.portfolio_drawdown: float | None = d.get("portfolio_drawdown")
        self.snapshot_bar_ms: int | None = d.get("snapshot_bar_ms")
        self.policy_version: str = d.get("policy_version", "")
        self.inst: dict[str, InstrumentState] = {}
        for sym, s in d.get("instruments", {}).items():
            st = InstrumentState(
                pending={int(t): Pending(**p) for t, p in s["pending"].items()},
                last_close=None if s["last_close"] is None else (int(s["last_close"][0]),
                                                                 float(s["last_close"][1])),
                returns=list(s["returns"]), outcomes=list(s["outcomes"]),
                last_direction=int(s["last_direction"]), last_decided_ms=s["last_decided_ms"],
                last_regime=s["last_regime"], book=PaperBook.from_list(s["book"]))
            self.inst[sym] = st
        if self.policy is not None and self.policy.version != self.policy_version:
            self.policy = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "breaker_state": self.breaker_state, "equity": self.equity,
            "breaker_log": [list(x) for x in self.breaker_log], "breaker_before": self.breaker_before,
            "portfolio_drawdown": self.portfolio_drawdown, "snapshot_bar_ms": self.snapshot_bar_ms,
            "policy_version": self.policy_version,
            "instruments": {sym: {
                "pending": {str(t): {"signal": p.signal, "regime": p.regime, "close": p.close}
                            for t, p in sorted(s.pending.items())},
                "last_close": None if s.last_close is None else list(s.last_close),
                "returns": s.returns, "outcomes": s.outcomes, "last_direction": s.last_direction,
                "last_decided_ms": s.last_decided_ms, "last_regime": s.last_regime,
                "book": s.book.to_list()} for sym, s in sorted(self.inst.items())},
        }

    def set_policy(self, policy: RLPolicy | None) -> None:
        self.policy = policy
        self.policy_version = "" if policy is None else policy.version

    @property
    def needs_attach(self) -> bool:
        """A snapshot names a policy version that is not loaded in this process yet."""
        return bool(self.policy_version) and self.policy is None

    def pending_keys(self) -> list[tuple[str, int]]:
        """Joins waiting for an input: ``(instrument, bar_time_ms)``."""
        return [(sym, t) for sym, s in sorted(self.inst.items()) for t in sorted(s.pending)]

    # -- global inputs -----------------------------------------------------------------------
    def on_breaker(self, to_state: str, at_ns: int) -> None:
        """A transition stamped ``at_ns`` (the bar close risk decided it at). It rules the bars
        that close after it: risk's trip at bar t's snapshot races bar t's signal to the sizer,
        and bar t's decision must not depend on which one arrives first."""
        self.breaker_state = to_state
        self.breaker_log.append((at_ns, to_state))
        self.breaker_log.sort(key=lambda x: x[0])         # stable: same-time ones keep their order
        while len(self.breaker_log) > MAX_BREAKER_LOG:
            self.breaker_before = self.breaker_log.pop(0)[1]

    def breaker_at(self, close_ns: int) -> str | None:
        """The breaker state for the decision of a bar closing at ``close_ns``: the last
        transition stamped before it."""
        state = self.breaker_before
        for at, to_state in self.breaker_log:
            if at >= close_ns:
                break
            state = to_state
        return state

    def on_portfolio(self, bar_time_ms: int, equity: str, drawdown: float) -> None:
        if self.snapshot_bar_ms is None or bar_time_ms >= self.snapshot_bar_ms:
            self.snapshot_bar_ms, self.equity, self.portfolio_drawdown = bar_time_ms, equity, drawdown

    # -- per-instrument inputs ---------------------------------------------------------------
    def on_signal(self, s: SignalIn) -> Result:
        return self._on_input(s.instrument, s.bar_time_ms, "signal", dict(vars(s)))

    def on_regime(self, r: RegimeIn) -> Result:
        d = dict(vars(r))
        d["probabilities"] = [float(x) for x in r.probabilities]     # JSON-stable state
        return self._on_input(r.instrument, r.bar_time_ms, "regime", d)

    def on_bar(self, instrument: str, bar_time_ms: int, close: float) -> Result:
        return self._on_input(instrument, bar_time_ms, "bar", close)

    def flush(self, instrument: str, bar_time_ms: int, cause: str = "timeout") -> Result:
        """Decide (or drop) the pending join ``(instrument, bar_time_ms)`` now, with what is there."""
        st = self.inst.get(instrument)
        if st is None or bar_time_ms not in st.pending:
            return Result(notes=["flush:nothing_pending"])
        res = Result()
        for t in sorted(x for x in st.pending if x <= bar_time_ms):
            res.extend(self._finish(instrument, st, t, cause))
        return res

    def _on_input(self, sym: str, t: int, what: str, value: Any) -> Result:
        if sym not in self.params.symbols:
            return Result(notes=[f"dropped:unknown_instrument:{what}"])
        st = self.inst.setdefault(sym, InstrumentState())
        res = Result()
        for earlier in sorted(x for x in st.pending if x < t):
            res.extend(self._finish(sym, st, earlier, "later_bar"))
        if st.last_decided_ms is not None and t <= st.last_decided_ms:
            if what == "bar" and (st.last_close is None or t > st.last_close[0]):
                st.last_close = (t, float(value))
            res.notes.append(f"late:{what}")
            return res
        p = st.pending.setdefault(t, Pending())
        if what == "signal":
            p.signal = value
        elif what == "regime":
            p.regime = value
            st.last_regime = value
        else:
            p.close = float(value)
            self._apply_bar(st, t, float(value))
        if p.signal is not None and p.regime is not None \
                and (p.close is not None or not self.params.require_bar):
            res.extend(self._finish(sym, st, t, None))
        return res

    def _apply_bar(self, st: InstrumentState, t: int, close: float) -> None:
        """Bar t closed: the position held over it earns its return; record the outcome."""
        if st.last_close is not None and st.last_close[0] < t and st.last_close[1] > 0 \
                and close > 0:
            simple = close / st.last_close[1] - 1.0
            st.book.hold(simple)
            if st.last_direction != 0:
                st.outcomes = (st.outcomes + [st.last_direction * simple])[-self.params.kelly.window:]
            st.returns = ([math.log(close / st.last_close[1])] + st.returns)[:N_RETURNS]
        if st.last_close is None or t > st.last_close[0]:
            st.last_close = (t, close)

    def _finish(self, sym: str, st: InstrumentState, t: int, cause: str | None) -> Result:
        """Decide bar t (complete, or flushed for ``cause``) and drop its pending entry."""
        p = st.pending.pop(t)
        if p.signal is None:
            return Result(notes=[f"dropped:no_signal:{cause}"])
        stale = p.regime is None
        regime = st.last_regime if stale else p.regime
        notes = [f"stale:{cause}"] if stale else []
        if p.close is None and cause is not None:
            notes.append(f"no_bar:{cause}")
        return Result(outs=[self._size(sym, st, t, p.signal, regime, stale)], notes=notes)

    def _size(self, sym: str, st: InstrumentState, t: int, sig: dict[str, Any], regime: dict[str, Any] | None,
              stale: bool) -> SizedOut:
        kp = self.params.kelly
        label = None if regime is None else regime["label"]
        b = win_loss_ratio(st.outcomes, kp)
        direction = int(sig["direction"])
        kelly = kelly_fraction(float(sig["probability"]), direction, b,
                               kp.regime_fraction(label), kp.max_fraction)
        rl = None
        pol = self.policy
        if pol is not None and pol.usable:
            obs = build_observation(
                probability=sig["probability"], confidence=sig["confidence"],
                live_ic=sig["live_ic"],
                regime_probs=None if regime is None else regime["probabilities"],
                volatility=math.nan if regime is None else regime["volatility"],
                position=st.book.position, returns=st.returns, drawdown=st.book.drawdown,
                kelly=kelly, max_fraction=pol.max_fraction)
            rl = pol.fraction(obs, kp.max_fraction)
        d = decide(CascadeInput(self.breaker_at(int(sig["ts_event_ns"])), float(sig["confidence"]), sig["live_ic"],
                                kelly, rl, int(sig.get("live_ic_n", 0))), self.params.thresholds)
        if stale:
            d = Decision(d.tier, d.target_fraction, d.reason + "; regime stale (last known: "
                         f"{label or 'none'})", d.kelly_fraction, d.rl_fraction)
        st.book.rebalance(d.target_fraction, self.params.cost_rate)
        st.last_direction = direction
        st.last_decided_ms = t
        for x in [x for x in st.pending if x <= t]:
            del st.pending[x]
        return SizedOut(sym, t, d, label, stale, self.policy_version if rl is not None else "",
                        int(sig["ts_event_ns"]), b)
