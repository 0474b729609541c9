"""The portfolio's Prometheus metrics (``tm_portfolio_*``), set from the book after each event."""

from __future__ import annotations

from collections.abc import Sequence

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

    def update(self, book: Book, event_type: str, taken: Sequence[TakenSnapshot]) -> None:
        self.events.labels(event_type).inc()
        for t in taken:
            self.snapshots.labels("true" if t.complete else "false").inc()
            self.last_snapshot.set(t.body.bar_time_ms / 1000)
        now = book.view(book.last_snapshot_ms or 0)
        self.equity.set(float(now.equity))
        self.peak.set(float(now.peak_equity))
        self.drawdown.set(now.drawdown)
        self.max_drawdown.set(book.perf.max_drawdown)
        self.realised.set(float(now.realised_pnl))
        self.unrealised.set(float(now.unrealised_pnl))
        self.fees.set(float(now.fees))
        self.funding.set(float(now.funding))
        for s, p in book.ledger.positions.items():
            self.position.labels(s).set(float(p.size))
        sharpe, sortino = book.perf.sharpe(), book.perf.sortino()
        self.sharpe.set(float("nan") if sharpe is None else sharpe)
        self.sortino.set(float("nan") if sortino is None else sortino)

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
