"""The risk engine's state and its JSON snapshot (text, never a binary object dump).

- ``clock_ms``: the handler's clock, the largest event time seen (ms); never the wall clock.
- ``equity`` (USDT), ``positions`` and ``marks`` (base coin, USDT): from the last portfolio snapshot.
- ``intended``: the position each instrument will have once the orders approved since the last
  snapshot fill. An instrument's entry is dropped (the snapshot position is adopted) when a
  snapshot for a later bar than its last order arrives, or when the executor rejects one of its
  orders. Deltas are taken from it, so a second target before the fill does not double an order.
- ``last_close``/``last_bar_open_ms``/``last_bar_end_ms``: from ``md.bar``; ``closes``: the rolling
  window of closes per instrument (bar open time → close) for HRP and VaR.
- ``breaker``: :class:`~tm_risk.domain.breaker.Breaker` (with its hold).
- ``losses``: :class:`~tm_risk.domain.loss_limits.LossBook`, the baselines of the daily and
  cumulative loss limits (never moved by a breaker transition).
- ``valuation_ms``/``valuation_equity``: the newest intra-bar valuation applied (``at_ms``,
  equity USDT; live only): an older or equal one is ignored, and the breaker's intra-bar checks
  survive a restart with it.
- ``transfers``: the portfolio's cumulative external flows (USDT) the baselines were last
  rebased for (:mod:`tm_risk.domain.flows`).
- ``audit_outbox``: audit rows (JSON-able dicts) written by the handler and not yet confirmed in
  the database: saved with the state, so a row of a committed kill survives a crash before it
  lands (the audit writer upserts by id, so writing one twice is harmless).
- ``joining``: targets waiting for their bar's set to complete (bar open ms → instrument →
  (fraction, tier)); ``decided_bar_ms``/``decided``: the last bar whose set was decided and the
  instruments in it (a late target of that bar is decided alone; an older one is refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np

from tm_risk.domain.breaker import Breaker, State
from tm_risk.domain.hrp import log_returns
from tm_risk.domain.loss_limits import LossBook
from tm_risk.domain.model import MarketModel, build_model
from tm_risk.domain.params import RiskParams

SNAPSHOT_VERSION = 1
_ENC = msgspec.json.Encoder(order="sorted")   # compact, keys sorted: byte-stable


@dataclass
class RiskState:
    clock_ms: int = 0
    equity: Decimal | None = None
    snapshot_bar_ms: int | None = None
    positions: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    intended: dict[str, Decimal] = field(default_factory=dict)
    order_bar_ms: dict[str, int] = field(default_factory=dict)
    last_close: dict[str, Decimal] = field(default_factory=dict)
    last_bar_open_ms: dict[str, int] = field(default_factory=dict)
    last_bar_end_ms: dict[str, int] = field(default_factory=dict)
    closes: dict[str, dict[int, float]] = field(default_factory=dict)
    breaker: Breaker = field(default_factory=Breaker)
    losses: LossBook = field(default_factory=LossBook)
    audit_outbox: list[dict[str, Any]] = field(default_factory=list)
    valuation_ms: int | None = None
    valuation_equity: Decimal | None = None
    joining: dict[int, dict[str, tuple[float, str]]] = field(default_factory=dict)
    decided_bar_ms: int | None = None
    decided: tuple[str, ...] = ()
    transfers: Decimal = Decimal(0)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- reads -----------------------------------------------------------------------------
    def position(self, instrument: str) -> Decimal:
        """Expected position (base coin, signed): intended if orders are in flight, else the
        snapshot's."""
        if instrument in self.intended:
            return self.intended[instrument]
        return self.positions.get(instrument, Decimal(0))

    def price(self, instrument: str) -> Decimal | None:
        """Mark price (USDT): the last bar close, else the snapshot's mark price."""
        return self.last_close.get(instrument) or self.marks.get(instrument)

    def aligned_returns(self, symbols: tuple[str, ...], window: int) -> np.ndarray | None:
        """Log returns (T ≤ window, N) on the bar times every symbol has, oldest first; None when
        a symbol has no closes. Cached until a close is added."""
        key = ("returns", symbols, window)
        if key in self._cache:
            cached: np.ndarray | None = self._cache[key]
            return cached
        out: np.ndarray | None = None
        if symbols and all(self.closes.get(s) for s in symbols):
            common = set(self.closes[symbols[0]])
            for s in symbols[1:]:
                common &= self.closes[s].keys()
            times = sorted(common)[-(window + 1):]
            mat = np.array([[self.closes[s][t] for s in symbols] for t in times], dtype=float)
            out = log_returns(mat.reshape(len(times), len(symbols)))
        self._cache[key] = out
        return out

    def market_model(self, params: RiskParams) -> MarketModel:
        """:class:`MarketModel` of the current window (cached until a close is added)."""
        hit = self._cache.get("model")
        if hit is None or hit[0] is not params:
            hit = self._cache["model"] = (params, build_model(
                self.aligned_returns(params.symbols, params.window_bars), params))
        return hit[1]

    # -- writes ----------------------------------------------------------------------------
    def advance_clock(self, ts_ms: int) -> int:
        """Move the clock to ``ts_ms`` if later (monotone); returns the clock."""
        self.clock_ms = max(self.clock_ms, ts_ms)
        return self.clock_ms

    def add_close(self, instrument: str, open_ms: int, close: float, keep: int) -> None:
        """Record a bar close, keeping the ``keep`` newest bar times of that instrument."""
        series = self.closes.setdefault(instrument, {})
        series[open_ms] = close
        if len(series) > keep:
            for t in sorted(series)[:len(series) - keep]:
                del series[t]
        self._cache.clear()

    def set_intended(self, instrument: str, qty: Decimal, bar_time_ms: int) -> None:
        self.intended[instrument] = qty
        self.order_bar_ms[instrument] = max(bar_time_ms, self.order_bar_ms.get(instrument, bar_time_ms))

    def forget_intended(self, instrument: str) -> None:
        self.intended.pop(instrument, None)
        self.order_bar_ms.pop(instrument, None)

    # -- snapshot --------------------------------------------------------------------------
    def to_json(self) -> bytes:
        b, lb = self.breaker, self.losses
        doc = {
            "v": SNAPSHOT_VERSION, "clock_ms": self.clock_ms, "equity": _s(self.equity),
            "snapshot_bar_ms": self.snapshot_bar_ms,
            "positions": _sd(self.positions), "marks": _sd(self.marks),
            "intended": _sd(self.intended), "order_bar_ms": dict(self.order_bar_ms),
            "last_close": _sd(self.last_close), "last_bar_open_ms": dict(self.last_bar_open_ms),
            "last_bar_end_ms": dict(self.last_bar_end_ms),
            "closes": self._closes_json(),
            "breaker": {"state": b.state.value, "since_ms": b.since_ms,
                        "peak_equity": _s(b.peak_equity), "last_equity": _s(b.last_equity),
                        "last_snapshot_bar_ms": b.last_snapshot_bar_ms, "held_bars": b.held_bars,
                        "failures": b.failures, "hold": b.hold},
            "losses": {"day_index": lb.day_index, "day_start_equity": _s(lb.day_start_equity),
                       "baseline_equity": _s(lb.baseline_equity),
                       "baseline_at_ms": lb.baseline_at_ms,
                       "baseline_reason": lb.baseline_reason},
            "audit_outbox": list(self.audit_outbox),
            "valuation_ms": self.valuation_ms, "valuation_equity": _s(self.valuation_equity),
            "joining": {str(t): {i: [f, tier] for i, (f, tier) in sorted(v.items())}
                        for t, v in sorted(self.joining.items())},
            "decided_bar_ms": self.decided_bar_ms, "decided": list(self.decided),
            "transfers": str(self.transfers),
        }
        return _ENC.encode(doc)

    def _closes_json(self) -> msgspec.Raw:
        """The closes, encoded once per new bar (they are most of the snapshot)."""
        raw = self._cache.get("closes_json")
        if raw is None:
            raw = self._cache["closes_json"] = msgspec.Raw(_ENC.encode(
                {s: [[t, c] for t, c in sorted(v.items())] for s, v in self.closes.items()}))
        return raw

    @classmethod
    def from_json(cls, data: bytes | str | None) -> RiskState:
        """The state of a :meth:`to_json` document (None → the initial state)."""
        if data is None:
            return cls()
        try:
            d = msgspec.json.decode(data)
        except msgspec.DecodeError as e:
            raise ValueError(f"risk state is not JSON: {e}") from e
        if d.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported risk state version {d.get('v')!r}")
        bd = d["breaker"]
        breaker = Breaker(state=State(bd["state"]), since_ms=bd["since_ms"],
                          peak_equity=_d(bd["peak_equity"]), last_equity=_d(bd["last_equity"]),
                          last_snapshot_bar_ms=bd["last_snapshot_bar_ms"],
                          held_bars=bd["held_bars"], failures=bd["failures"],
                          hold=str(bd.get("hold", "")))
        ld = d.get("losses") or {}
        losses = LossBook(day_index=ld.get("day_index"),
                          day_start_equity=_d(ld.get("day_start_equity")),
                          baseline_equity=_d(ld.get("baseline_equity")),
                          baseline_at_ms=int(ld.get("baseline_at_ms", 0)),
                          baseline_reason=str(ld.get("baseline_reason", "inception")))
        return cls(
            clock_ms=d["clock_ms"], equity=_d(d["equity"]), snapshot_bar_ms=d["snapshot_bar_ms"],
            positions=_dd(d["positions"]), marks=_dd(d["marks"]), intended=_dd(d["intended"]),
            order_bar_ms={k: int(v) for k, v in d["order_bar_ms"].items()},
            last_close=_dd(d["last_close"]),
            last_bar_open_ms={k: int(v) for k, v in d["last_bar_open_ms"].items()},
            last_bar_end_ms={k: int(v) for k, v in d["last_bar_end_ms"].items()},
            closes={s: {int(t): float(c) for t, c in v} for s, v in d["closes"].items()},
            breaker=breaker, losses=losses,
            audit_outbox=[dict(r) for r in d.get("audit_outbox", [])],
            valuation_ms=d.get("valuation_ms"), valuation_equity=_d(d.get("valuation_equity")),
            joining={int(t): {i: (float(f), str(tier)) for i, (f, tier) in v.items()}
                     for t, v in d.get("joining", {}).items()},
            decided_bar_ms=d.get("decided_bar_ms"), decided=tuple(d.get("decided", ())),
            transfers=Decimal(d.get("transfers", "0")))

    def same_as(self, other: RiskState) -> bool:
        """Equality of every persisted field (ignores caches)."""
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self)
                   if f.compare)


def _s(x: Decimal | None) -> str | None:
    return None if x is None else str(x)


def _d(x: str | None) -> Decimal | None:
    return None if x is None else Decimal(x)


def _sd(m: dict[str, Decimal]) -> dict[str, str]:
    return {k: str(v) for k, v in m.items()}


def _dd(m: dict[str, str]) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in m.items()}
