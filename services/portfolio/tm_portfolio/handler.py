"""``exec.report`` + ``md.bar`` → the book → ``portfolio.snapshot`` (thin; the logic is in domain).

- ``OrderFilled``: booked once per ``exec_id``, stamped with its envelope's ``ts_event_ns`` (the
  close of the bar whose decision it executes); ``FundingSettled``: once per
  ``(instrument, settle_time_ms)``, stamped with ``settle_time_ms``; both may be deferred to
  after a snapshot (see :mod:`tm_portfolio.domain.book`). ``PositionReconciled``: the exchange's
  position is adopted at once. ``BalanceReconciled``: once per event id, booked at once as an
  external flow (cash moves, PnL does not, the equity curve is rebased).
- ``BarClosed``: marks; emits the snapshot(s) the protocol of :mod:`tm_portfolio.domain.book`
  takes, each with correlation id ``portfolio:{bar_time_ms}`` and ``ts_event_ns`` = the bar close.
- ``MarkUpdated`` (``md.mark``, live only): an intra-bar mark; emits the book's intra-bar
  valuation (``PortfolioValued``) on ``portfolio.valuation`` with ``ts_event_ns`` = the mark's
  time and correlation id ``valuation:{at_ms}``, when it has one (see
  :mod:`tm_portfolio.domain.book`). It never changes a snapshot.
- ``OrderReported``, ``OrderRejected`` and any other type: counted, nothing else.

State (saved by the consumer atomically with the outputs) is the book as JSON, Decimals as
strings. Database rows (fills, snapshots) go to the repository's write-behind queue: idempotent
upserts, so a redelivered event rewrites the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from tm_common.bus.handler import Emit
from tm_common.bus.streams import PORTFOLIO_SNAPSHOT, PORTFOLIO_VALUATION
from tm_common.errors import PermanentError
from tm_common.events import (
    BalanceReconciled,
    BarClosed,
    Envelope,
    FundingSettled,
    MarkUpdated,
    OrderFilled,
    PortfolioSnapshotted,
    PortfolioValued,
    PositionReconciled,
)

from tm_portfolio.domain.book import Book, TakenSnapshot
from tm_portfolio.domain.performance import BARS_PER_YEAR_4H


class Sink(Protocol):
    """Where rows go (the repository); must not block."""

    def save_fill(self, fill: OrderFilled, event_id: str) -> None: ...

    def save_snapshot(self, snap: PortfolioSnapshotted, event_id: str) -> None: ...


class Observer(Protocol):
    """Metrics hook, called after every handled event with the book and the snapshots taken."""

    def update(self, book: Book, event_type: str, taken: Sequence[TakenSnapshot]) -> None: ...

    def valued(self, valuation: PortfolioValued) -> None: ...


class PortfolioHandler:
    """``StatefulHandler`` of the portfolio. ``symbols``: the instruments whose bars complete a
    bar time; ``initial_equity``: USDT at start."""

    def __init__(self, symbols: Sequence[str], initial_equity: Decimal, *,
                 periods_per_year: float = BARS_PER_YEAR_4H, interval_ms: int = 4 * 3_600_000,
                 sink: Sink | None = None, observer: Observer | None = None,
                 out_stream: str = PORTFOLIO_SNAPSHOT) -> None:
        self.symbols, self.initial = tuple(symbols), Decimal(initial_equity)
        self.periods_per_year, self.defer_window_ns = periods_per_year, interval_ms * 1_000_000
        self.sink, self.observer, self.out = sink, observer, out_stream
        self.book = self._new_book()

    def _new_book(self) -> Book:
        return Book.new(self.symbols, self.initial, self.periods_per_year, self.defer_window_ns)

    # -- StatefulHandler -------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return json.dumps(self.book.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def restore(self, data: bytes | None) -> None:
        self.book = Book.from_dict(json.loads(data), self.symbols, self.defer_window_ns) \
            if data else self._new_book()

    # -- handling --------------------------------------------------------------------------
    async def handle(self, event: Envelope) -> Sequence[Emit]:
        body = event.body
        self.book.count(event.type)
        taken: list[TakenSnapshot] = []
        valued: PortfolioValued | None = None
        try:
            if isinstance(body, BarClosed):
                taken = self.book.on_bar(body.instrument, body.open_time_ms, body.close,
                                         event.ts_event_ns)
            elif isinstance(body, OrderFilled):
                self._fill(body, event)
            elif isinstance(body, FundingSettled):
                if not self.book.seen_before(f"funding:{body.instrument}:{body.settle_time_ms}"):
                    self.book.on_funding(body.instrument, body.payment,
                                         body.settle_time_ms * 1_000_000)
            elif isinstance(body, MarkUpdated):
                valued = self.book.on_mark(body.instrument, body.mark_price, body.at_ms)
            elif isinstance(body, BalanceReconciled):
                if not self.book.seen_before(f"balance:{event.event_id}"):
                    self.book.on_balance(body.amount, body.reason, event.ts_event_ns // 1_000_000)
            elif isinstance(body, PositionReconciled):
                self.book.on_reconciled(body.instrument, body.exchange_qty, body.avg_price,
                                        body.reason, event.ts_event_ns // 1_000_000)
        except (ValueError, ArithmeticError) as e:   # bad values: dead-letter, keep going
            raise PermanentError(f"{event.type}: {e}") from e
        emits = []
        for i, snap in enumerate(taken):
            emits.append(Emit(self.out, snap.body, ts_event_ns=snap.close_ns,
                              correlation_id=f"portfolio:{snap.body.bar_time_ms}"))
            if self.sink is not None:
                eid = event.caused(snap.body, index=i, ts_init_ns=0).event_id
                self.sink.save_snapshot(snap.body, eid)
        if valued is not None:
            emits.append(Emit(PORTFOLIO_VALUATION, valued, ts_event_ns=valued.at_ms * 1_000_000,
                              correlation_id=f"valuation:{valued.at_ms}"))
        if self.observer is not None:
            self.observer.update(self.book, event.type, taken)
            if valued is not None:
                self.observer.valued(valued)
        return emits

    def _fill(self, fill: OrderFilled, event: Envelope) -> None:
        if self.book.seen_before(f"exec:{fill.exec_id}"):
            return
        self.book.on_fill(fill.instrument, fill.side, fill.qty, fill.price, fill.fee,
                          event.ts_event_ns)
        if self.sink is not None:
            self.sink.save_fill(fill, event.event_id)

    # -- reads -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """For ``/status``: equity, positions, drawdown, statistics (money as strings)."""
        b = self.book
        now = b.view(b.last_snapshot_ms or 0)
        return {
            "equity": str(now.equity), "cash": str(now.cash),
            "realised_pnl": str(now.realised_pnl), "unrealised_pnl": str(now.unrealised_pnl),
            "fees": str(now.fees), "funding": str(now.funding),
            "transfers": str(now.transfers), "peak_equity": str(now.peak_equity), "drawdown": now.drawdown,
            "positions": {p.instrument: {"qty": str(p.qty), "avg_price": str(p.avg_price),
                                         "mark_price": str(p.mark_price),
                                         "unrealised_pnl": str(p.unrealised_pnl)}
                          for p in now.positions},
            "last_snapshot_bar_ms": b.last_snapshot_ms, "pending_bar_ms": b.pending_ms,
            "pending_seen": sorted(b.seen), "incomplete_snapshots": b.incomplete,
            "late_bars": b.late_bars, "duplicates": b.duplicates, "events": dict(b.counts),
            "deferred_now": len(b.deferred), "deferrals": b.deferrals,
            "intrabar": {"marks": {i: {"price": str(p), "at_ms": t}
                                   for i, (p, t) in sorted(b.intrabar.items())},
                         "valuations": b.valuations, "stale_marks": b.stale_marks},
            "reconciliations": b.ledger.adjustment_count,
            "last_adjustments": [{k: str(v) if isinstance(v, Decimal) else v
                                  for k, v in a.items()} for a in b.ledger.adjustments[-5:]],
            "statistics": b.statistics(),
        }
