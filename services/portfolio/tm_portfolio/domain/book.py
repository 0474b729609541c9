"""The portfolio book: ledger + performance + the snapshot protocol, as one pure state machine.

Snapshot protocol (one ``PortfolioSnapshotted`` per bar time ``t``, a function of the events
before it, so a lockstep replay and a restart reproduce it exactly):

- a bar (``BarClosed``, bar time = its open time) marks its instrument at the close;
- the snapshot for ``t`` is taken when the bars of every configured instrument for ``t`` are
  marked (``complete``), right after the last of them;
- if a bar of a later time arrives while ``t`` is incomplete (an instrument had no bar for ``t``),
  the snapshot for ``t`` is taken first, before that bar is marked (``incomplete``, counted), so
  a missing bar delays nothing by more than one bar time and never mixes two bar times;
- a bar for a time already snapshotted (or older than the pending time) is late: it updates its
  instrument's mark if newer than that mark, and emits nothing.

Effects on ``exec.report`` (fills, funding) carry a stamp: a fill's envelope ``ts_event_ns`` (the
close of the bar whose decision it executes), a funding payment's ``settle_time_ms``. Snapshot
``t`` contains exactly the effects stamped at or before ``t``'s open (= the close of ``t - 1``):
orders decided on bar ``t`` execute after ``t``'s bars, so their fills show in snapshot ``t + 1``,
which is how a 4h system trades (and what risk expects: a snapshot for a later bar than an order
includes its fills). Snapshot ``t`` is the portfolio marked at ``t``'s closes with every fill of
the decisions up to ``t - 1``; funding settled at ``t``'s close shows in ``t + 1`` too.

In lockstep replay ingest publishes ``t + 1`` only when the pipeline of ``t`` is idle, so effects
arrive in that order anyway. When they arrive early (a consumer that restarts with a backlog reads
``exec.report`` before ``md.bar``), an effect stamped after the newest snapshot's close is
deferred (kept in the state) and booked right after the snapshot whose close reaches its stamp, or
when a bar time opening at or after its stamp starts. Only stamps within ``defer_window_ns`` (one
bar interval) of the newest bar close seen are deferred; anything further ahead (a wall-clock stamp
in a replay) is booked at once (before the first bar: at the first bar), so no effect waits
forever. Deferred effects are always booked in arrival order. Reconciliations are booked at once.

Intra-bar marks (``mark.updated``, live only) never touch the ledger, the snapshots or the equity
curve: the book keeps the newest one per instrument beside them (``intrabar``) and
:meth:`Book.on_mark` returns a valuation (``PortfolioValued``): cash plus each position's
unrealised PnL at its intra-bar mark, or at its bar close when it has no mark newer than that
close. A mark not after the close of its instrument's newest bar, or not after the instrument's
previous mark, is ignored (the close, or that mark, is newer); a bar drops the marks it
supersedes. A book with no open position has nothing to value: no valuation. Marks are part of
the saved state, so a restarted book values exactly as the uninterrupted one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tm_common.events import PortfolioSnapshotted, PortfolioValued, PositionView

from tm_portfolio.domain.ledger import Ledger, side_sign
from tm_portfolio.domain.performance import BARS_PER_YEAR_4H, PerformanceTracker, drawdown

STATE_VERSION = 1
RECENT_IDS = 512          # exec ids and funding keys remembered for de-duplication
INTERVAL_4H_NS = 4 * 3600 * 1_000_000_000


@dataclass(frozen=True)
class TakenSnapshot:
    """A snapshot to publish: the body, the bar's close (ns) and whether every bar was in."""

    body: PortfolioSnapshotted
    close_ns: int
    complete: bool


@dataclass
class Book:
    """``instruments``: the bars that complete a bar time. ``ledger.initial``: equity at start.
    ``defer_window_ns``: how far beyond the newest bar close an effect's stamp may be and still
    be deferred (one bar interval)."""

    instruments: tuple[str, ...]
    ledger: Ledger
    perf: PerformanceTracker
    defer_window_ns: int = INTERVAL_4H_NS
    pending_ms: int | None = None
    pending_close_ns: int = 0
    seen: set[str] = field(default_factory=set)
    last_snapshot_ms: int | None = None
    last_close_ns: int | None = None
    newest_close_ns: int | None = None
    deferred: list[dict[str, str]] = field(default_factory=list)
    incomplete: int = 0
    late_bars: int = 0
    duplicates: int = 0
    deferrals: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_IDS))
    intrabar: dict[str, tuple[Decimal, int]] = field(default_factory=dict)
    valuations: int = 0
    stale_marks: int = 0

    @classmethod
    def new(cls, instruments: tuple[str, ...], initial: Decimal,
            periods_per_year: float = BARS_PER_YEAR_4H,
            defer_window_ns: int = INTERVAL_4H_NS) -> Book:
        return cls(instruments=tuple(instruments), ledger=Ledger(initial=initial),
                   perf=PerformanceTracker(initial=initial, periods_per_year=periods_per_year),
                   defer_window_ns=defer_window_ns)

    # -- events ----------------------------------------------------------------------------
    def count(self, event_type: str) -> None:
        self.counts[event_type] = self.counts.get(event_type, 0) + 1

    def seen_before(self, key: str) -> bool:
        """True (and counted) if ``key`` was booked recently; else remember it."""
        if key in self.recent:
            self.duplicates += 1
            return True
        self.recent.append(key)
        return False

    def on_bar(self, instrument: str, bar_ms: int, close: Decimal,
               close_ns: int) -> list[TakenSnapshot]:
        """Mark ``instrument`` with the bar opening at ``bar_ms`` and closing at ``close_ns``;
        returns the snapshots taken (0, 1 or 2), oldest first."""
        if not close.is_finite() or close <= 0:
            raise ValueError(f"bar close must be finite and > 0, got {close}")
        self.newest_close_ns = max(self.newest_close_ns or close_ns, close_ns)
        self._book_far()
        late = (self.last_snapshot_ms is not None and bar_ms <= self.last_snapshot_ms) or \
            (self.pending_ms is not None and bar_ms < self.pending_ms)
        if late:
            self.late_bars += 1
            self.ledger.mark(instrument, close, bar_ms)
            self._drop_superseded_mark(instrument)
            return []
        out = []
        if self.pending_ms is not None and bar_ms > self.pending_ms:
            out.append(self._take(complete=False))
        if self.pending_ms is None:
            self.pending_ms, self.pending_close_ns, self.seen = bar_ms, close_ns, set()
            self._book_deferred(bar_ms * 1_000_000)
        self.ledger.mark(instrument, close, bar_ms)
        self._drop_superseded_mark(instrument)
        self.seen.add(instrument)
        if self.seen.issuperset(self.instruments):
            out.append(self._take(complete=True))
        return out

    def on_fill(self, instrument: str, side: str, qty: Decimal, price: Decimal, fee: Decimal,
                stamp_ns: int) -> bool:
        """Book a fill now, or defer it (returns True) if it belongs after a later snapshot."""
        effect = {"kind": "fill", "instrument": instrument, "side": side, "qty": str(qty),
                  "price": str(price), "fee": str(fee), "stamp_ns": str(stamp_ns)}
        # refuse a bad fill now, not later when a deferred effect is booked on another event
        side_sign(side)
        if not all(x.is_finite() for x in (qty, price, fee)) or qty <= 0 or price <= 0:
            raise ValueError(f"fill needs finite qty > 0, price > 0 and fee, got qty={qty} "
                             f"price={price} fee={fee}")
        return self._effect(effect)

    def on_funding(self, instrument: str, payment: Decimal, stamp_ns: int) -> bool:
        """Book a funding payment (> 0 paid) now, or defer it (returns True)."""
        if not payment.is_finite():
            raise ValueError(f"funding payment must be finite, got {payment}")
        return self._effect({"kind": "funding", "instrument": instrument,
                             "payment": str(payment), "stamp_ns": str(stamp_ns)})

    def on_reconciled(self, instrument: str, qty: Decimal, avg_price: Decimal, reason: str,
                      at_ms: int) -> dict[str, Any]:
        return self.ledger.adopt(instrument, qty, avg_price, reason=reason, at_ms=at_ms)

    def on_balance(self, amount: Decimal, reason: str, at_ms: int) -> dict[str, Any]:
        """An external flow the executor adopted from the venue's wallet, booked at once: cash
        and equity move by ``amount``; the equity curve is rebased (a flow is not a return)."""
        record = self.ledger.transfer(amount, reason=reason, at_ms=at_ms)
        self.perf.flow(amount)
        return record

    # -- intra-bar marks -------------------------------------------------------------------
    @property
    def interval_ms(self) -> int:
        """The bar interval (ms): one bar's open to its close."""
        return self.defer_window_ns // 1_000_000

    def _bar_close_ms(self, instrument: str) -> int | None:
        """Close (ms) of the newest bar that marked ``instrument`` (None: no bar yet)."""
        t = self.ledger.mark_times_ms.get(instrument)
        return None if t is None else t + self.interval_ms

    def _drop_superseded_mark(self, instrument: str) -> None:
        m, close = self.intrabar.get(instrument), self._bar_close_ms(instrument)
        if m is not None and close is not None and m[1] <= close:
            del self.intrabar[instrument]

    def on_mark(self, instrument: str, price: Decimal, at_ms: int) -> PortfolioValued | None:
        """Take an intra-bar mark of ``instrument`` at ``price`` (USDT) at ``at_ms``; returns the
        valuation it gives, or None (an unknown instrument, a mark the bar close or an earlier
        mark supersedes, or no open position). Raises ``ValueError`` for a price that is not
        finite and > 0."""
        if not price.is_finite() or price <= 0:
            raise ValueError(f"mark price must be finite and > 0, got {price}")
        if instrument not in self.instruments:
            return None
        close = self._bar_close_ms(instrument)
        prev = self.intrabar.get(instrument)
        if (close is not None and at_ms <= close) or (prev is not None and at_ms <= prev[1]):
            self.stale_marks += 1
            return None
        self.intrabar[instrument] = (price, at_ms)
        if not any(p.size != 0 for p in self.ledger.positions.values()):
            return None
        self.valuations += 1
        return self.valuation(at_ms, instrument)

    def valuation(self, at_ms: int, mark_instrument: str = "") -> PortfolioValued:
        """The book now at the intra-bar marks (see the module docstring); moves nothing."""
        led = self.ledger
        marks = {**led.marks, **{s: m for s, (m, _) in self.intrabar.items()}}
        upnl = sum((p.unrealised_pnl(marks.get(s)) for s, p in led.positions.items()), Decimal(0))
        equity = led.cash() + upnl
        peak = self.perf.peak_equity if self.perf.peak_equity is not None else led.initial
        positions = tuple(
            PositionView(instrument=s, qty=p.size, avg_price=p.avg_price,
                         mark_price=marks.get(s, p.avg_price),
                         unrealised_pnl=p.unrealised_pnl(marks.get(s)))
            for s, p in sorted(led.positions.items()) if p.size != 0)
        return PortfolioValued(at_ms=at_ms, equity=equity, unrealised_pnl=upnl, peak_equity=peak,
                               drawdown=drawdown(peak, equity), after_bar_ms=self.last_snapshot_ms,
                               mark_instrument=mark_instrument, positions=positions,
                               transfers=led.transfers)

    # -- deferral --------------------------------------------------------------------------
    def _effect(self, effect: dict[str, str]) -> bool:
        stamp = int(effect["stamp_ns"])
        ahead = self.last_close_ns is None or stamp > self.last_close_ns
        if ahead and (self.newest_close_ns is None or
                      stamp <= self.newest_close_ns + self.defer_window_ns):
            self.deferred.append(effect)
            self.deferrals += 1
            return True
        self._apply(effect)
        return False

    def _book_deferred(self, up_to_ns: int) -> None:
        """Book, in arrival order, the deferred effects stamped at or before ``up_to_ns``."""
        keep = []
        for e in self.deferred:
            if int(e["stamp_ns"]) <= up_to_ns:
                self._apply(e)
            else:
                keep.append(e)
        self.deferred = keep

    def _book_far(self) -> None:
        """Book the deferred effects stamped beyond the window of the newest bar close (they
        were deferred before any bar was seen), with every effect that arrived before them, so
        effects are always booked in arrival order."""
        assert self.newest_close_ns is not None
        limit = self.newest_close_ns + self.defer_window_ns
        far = [i for i, e in enumerate(self.deferred) if int(e["stamp_ns"]) > limit]
        if far:
            head, self.deferred = self.deferred[:far[-1] + 1], self.deferred[far[-1] + 1:]
            for e in head:
                self._apply(e)

    def _apply(self, e: dict[str, str]) -> None:
        if e["kind"] == "fill":
            self.ledger.apply_fill(e["instrument"], e["side"], Decimal(e["qty"]),
                                   Decimal(e["price"]), Decimal(e["fee"]))
        else:
            self.ledger.apply_funding(e["instrument"], Decimal(e["payment"]))

    # -- snapshots -------------------------------------------------------------------------
    def _take(self, *, complete: bool) -> TakenSnapshot:
        assert self.pending_ms is not None
        body = self.view(self.pending_ms, record=True)
        taken = TakenSnapshot(body, self.pending_close_ns, complete)
        self.last_snapshot_ms, self.last_close_ns = self.pending_ms, self.pending_close_ns
        self.pending_ms, self.seen = None, set()
        self._book_deferred(self.pending_close_ns)
        if not complete:
            self.incomplete += 1
        return taken

    def view(self, bar_ms: int, *, record: bool = False) -> PortfolioSnapshotted:
        """The portfolio now as a snapshot body for ``bar_ms``; ``record`` adds it to the
        equity curve (peak, drawdown, returns)."""
        led = self.ledger
        equity = led.equity()
        if record:
            peak, dd = self.perf.add(equity)
        else:
            assert self.perf.peak_equity is not None
            peak = max(self.perf.peak_equity, equity)
            dd = drawdown(peak, equity)
        positions = tuple(
            PositionView(instrument=s, qty=p.size, avg_price=p.avg_price,
                         mark_price=led.marks.get(s, p.avg_price),
                         unrealised_pnl=p.unrealised_pnl(led.marks.get(s)))
            for s, p in sorted(led.positions.items()) if p.size != 0)
        return PortfolioSnapshotted(
            bar_time_ms=bar_ms, equity=equity, cash=led.cash(), realised_pnl=led.realised_pnl,
            unrealised_pnl=led.unrealised_pnl(), fees=led.fees, funding=led.funding,
            peak_equity=peak, drawdown=dd, positions=positions, transfers=led.transfers)

    def statistics(self) -> dict[str, Any]:
        """Performance statistics (see :mod:`tm_portfolio.domain.performance`), JSON-able."""
        p, led = self.perf, self.ledger
        trips = led.trips_won + led.trips_lost
        return {"snapshots": p.snapshots, "returns": p.n, "sharpe": p.sharpe(),
                "sortino": p.sortino(), "calmar": p.calmar(), "cagr": p.cagr(),
                "max_drawdown": p.max_drawdown, "bar_win_rate": p.bar_win_rate(),
                "round_trips": trips, "round_trip_win_rate": led.trips_won / trips if trips else None,
                "turnover": p.turnover(led.traded_notional),
                "traded_notional": str(led.traded_notional),
                "average_equity": str(p.average_equity()),
                "fees": str(led.fees), "funding": str(led.funding)}

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "instruments": list(self.instruments),
                "ledger": self.ledger.to_dict(), "perf": self.perf.to_dict(),
                "defer_window_ns": self.defer_window_ns,
                "pending_ms": self.pending_ms, "pending_close_ns": self.pending_close_ns,
                "seen": sorted(self.seen), "last_snapshot_ms": self.last_snapshot_ms,
                "last_close_ns": self.last_close_ns, "newest_close_ns": self.newest_close_ns,
                "deferred": [dict(e) for e in self.deferred], "deferrals": self.deferrals,
                "incomplete": self.incomplete, "late_bars": self.late_bars,
                "duplicates": self.duplicates, "counts": dict(sorted(self.counts.items())),
                "recent": list(self.recent),
                "intrabar": {k: [str(p), t] for k, (p, t) in sorted(self.intrabar.items())},
                "valuations": self.valuations, "stale_marks": self.stale_marks}

    @classmethod
    def from_dict(cls, d: dict[str, Any], instruments: tuple[str, ...] | None = None,
                  defer_window_ns: int | None = None) -> Book:
        """Restore; ``instruments`` and ``defer_window_ns`` (the configured ones) replace the
        saved values if given."""
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"portfolio state version {d.get('version')!r} is not {STATE_VERSION}")
        return cls(instruments=tuple(instruments or d["instruments"]),
                   ledger=Ledger.from_dict(d["ledger"]),
                   perf=PerformanceTracker.from_dict(d["perf"]),
                   defer_window_ns=int(defer_window_ns or d["defer_window_ns"]),
                   pending_ms=d["pending_ms"], pending_close_ns=int(d["pending_close_ns"]),
                   seen=set(d["seen"]), last_snapshot_ms=d["last_snapshot_ms"],
                   last_close_ns=d["last_close_ns"], newest_close_ns=d["newest_close_ns"],
                   deferred=[dict(e) for e in d["deferred"]], deferrals=int(d["deferrals"]),
                   incomplete=int(d["incomplete"]),
                   late_bars=int(d["late_bars"]), duplicates=int(d["duplicates"]),
                   counts={k: int(v) for k, v in d["counts"].items()},
                   recent=deque(d["recent"], maxlen=RECENT_IDS),
                   intrabar={k: (Decimal(p), int(t))
                             for k, (p, t) in d.get("intrabar", {}).items()},
                   valuations=int(d.get("valuations", 0)),
                   stale_marks=int(d.get("stale_marks", 0)))
