"""The portfolio's Prometheus metrics (``tm_portfolio_*``): counters and positions set after each
event, the book's figures (equity, PnL, drawdown, Sharpe) read from the book when scraped."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from tm_common.events import PortfolioValued

from tm_portfolio.domain.book import Book, TakenSnapshot


class PortfolioMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.equity = Gauge("tm_portfolio_equity_usdt", "Equity now: cash + unrealised PnL.",
                            registry=r)
        self.peak = Gauge("tm_portfolio_peak_equity_usdt", "Highest snapshot equity (or initial).",
                          registry=r)
        self.drawdown = Gauge("tm_portfolio_drawdown_ratio", "1 - equity / peak equity, now.",
                              registry=r)
        self.max_drawdown = Gauge("tm_portfolio_max_drawdown_ratio",
                                  "Largest snapshot drawdown so far.", registry=r)
        self.position = Gauge("tm_portfolio_position_qty", "Signed position, base coin.",
                              ("instrument",), registry=r)
        self.realised = Gauge("tm_portfolio_realised_pnl_usdt", "Realised price PnL (fees excluded).",
                              registry=r)
        self.unrealised = Gauge("tm_portfolio_unrealised_pnl_usdt", "Unrealised PnL at the marks.",
                                registry=r)
        self.fees = Gauge("tm_portfolio_fees_usdt", "Fees paid, cumulative.", registry=r)
        self.funding = Gauge("tm_portfolio_funding_usdt", "Funding paid, cumulative.", registry=r)
        self.transfers = Gauge("tm_portfolio_transfers_usdt", "External flows booked from the "
                               "venue's wallet (BalanceReconciled; > 0 in), cumulative.",
                               registry=r)
        self.sharpe = Gauge("tm_portfolio_sharpe_ratio", "Annualised Sharpe of snapshot returns "
                            "(NaN until defined).", registry=r)
        self.sortino = Gauge("tm_portfolio_sortino_ratio", "Annualised Sortino of snapshot returns "
                             "(NaN until defined).", registry=r)
        self.last_snapshot = Gauge("tm_portfolio_last_snapshot_bar_time_seconds",
                                   "Bar time of the newest snapshot.", registry=r)
        self.snapshots = Counter("tm_portfolio_snapshots_total",
                                 "Snapshots published; complete=false: a bar was missing.",
                                 ("complete",), registry=r)
        self.events = Counter("tm_portfolio_events_total", "Input events by type.", ("type",),
                              registry=r)
        self.db_backlog = Gauge("tm_portfolio_db_backlog", "Row batches waiting for the database.",
                                registry=r)
        self.db_failures = Counter("tm_portfolio_db_write_failures_total",
                                   "Database writes that failed (retried).", registry=r)
        self.db_dropped = Counter("tm_portfolio_db_batches_dropped_total",
                                  "Row batches dropped because the backlog was full.", registry=r)
        self.intrabar_equity = Gauge("tm_portfolio_intrabar_equity_usdt",
                                     "Equity at the newest intra-bar marks (live only).",
                                     registry=r)
        self.intrabar_time = Gauge("tm_portfolio_last_valuation_time_seconds",
                                   "Time of the newest intra-bar valuation (0: none yet).",
                                   registry=r)
        self.valuations = Counter("tm_portfolio_valuations_total",
                                  "Intra-bar valuations published on portfolio.valuation.",
                                  registry=r)
        self._db_seen = (0, 0)
        # The book's figures are read from the book when scraped, not after every event (the
        # valuation and the Sharpe ratio per event were most of the portfolio's handling).
        self._book: Book | None = None
        views: dict[Gauge, Callable[[Any], float]] = {self.equity: lambda v: float(v.equity), self.peak: lambda v: float(v.peak_equity),
                 self.drawdown: lambda v: v.drawdown,
                 self.realised: lambda v: float(v.realised_pnl),
                 self.unrealised: lambda v: float(v.unrealised_pnl),
                 self.fees: lambda v: float(v.fees), self.funding: lambda v: float(v.funding),
                 self.transfers: lambda v: float(v.transfers)}
        for gauge, of_view in views.items():
            gauge.set_function(functools.partial(self._of_view, of_view))
        self.max_drawdown.set_function(lambda: self._of_book(lambda b: b.perf.max_drawdown))
        self.sharpe.set_function(lambda: self._of_book(lambda b: _nan(b.perf.sharpe())))
        self.sortino.set_function(lambda: self._of_book(lambda b: _nan(b.perf.sortino())))

    def _of_book(self, value: Callable[[Book], float]) -> float:
        return 0.0 if self._book is None else value(self._book)

    def _of_view(self, value: Callable[[Any], float]) -> float:
        b = self._book
        return 0.0 if b is None else value(b.view(b.last_snapshot_ms or 0))

    def update(self, book: Book, event_type: str, taken: Sequence[TakenSnapshot]) -> None:
        self._book = book
        self.events.labels(event_type).inc()
        for t in taken:
            self.snapshots.labels("true" if t.complete else "false").inc()
            self.last_snapshot.set(t.body.bar_time_ms / 1000)
        for s, p in book.ledger.positions.items():
            self.position.labels(s).set(float(p.size))

    def valued(self, valuation: PortfolioValued) -> None:
        self.valuations.inc()
        self.intrabar_equity.set(float(valuation.equity))
        self.intrabar_time.set(valuation.at_ms / 1000)

    def db(self, backlog: int, failures: int, dropped: int) -> None:
        """Repository counts → metrics (counters advance by the difference)."""
        self.db_backlog.set(backlog)
        f0, d0 = self._db_seen
        if failures > f0:
            self.db_failures.inc(failures - f0)
        if dropped > d0:
            self.db_dropped.inc(dropped - d0)
        self._db_seen = (failures, dropped)


def _nan(x: float | None) -> float:
    """NaN until defined (a ratio with too few returns)."""
    return float("nan") if x is None else x
