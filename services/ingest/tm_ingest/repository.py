"""Bars, DVOL and funding rates to the database: idempotent upserts, written behind the stream.

The stream is the transport and PostgreSQL the durable record: a write that fails (database
restarting) is kept and retried with backoff, in order, without blocking publication.
"""

from __future__ import annotations

from collections.abc import Sequence

from tm_common.db.tables import bars as bars_table
from tm_common.db.tables import dvol as dvol_table
from tm_common.db.tables import funding as funding_table
from tm_common.db.writer import TablesWriter
from tm_common.events import BarClosed, DvolUpdated, FundingRateUpdated


def bar_row(b: BarClosed, event_id: str | None = None) -> dict:
    return {"instrument": b.instrument, "interval_min": b.interval_min,
            "open_time_ms": b.open_time_ms, "close_time_ms": b.close_time_ms, "open": b.open,
            "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
            "source": b.source}


def dvol_row(d: DvolUpdated) -> dict:
    return {"currency": d.currency, "day_ms": d.day_ms, "known_at_ms": d.known_at_ms,
            "value": d.value}


def funding_row(f: FundingRateUpdated) -> dict:
    return {"instrument": f.instrument, "settle_time_ms": f.settle_time_ms, "rate": f.rate,
            "source": f.source}


#: kind → (table, natural key) of a queued batch.
TABLES = {"bars": (bars_table, ("instrument", "interval_min", "open_time_ms")),
          "dvol": (dvol_table, ("currency", "day_ms")),
          "funding": (funding_table, ("instrument", "settle_time_ms"))}


class MarketRepository(TablesWriter):
    """Queues bar/DVOL/funding rows and writes them with retries (:class:`TablesWriter`).
    ``backlog`` is exposed as a metric."""

    service = "ingest"
    tables = TABLES

    def save_bars(self, bars: Sequence[BarClosed]) -> None:
        self.save_to("bars", [bar_row(b) for b in bars])

    def save_dvol(self, points: Sequence[DvolUpdated]) -> None:
        self.save_to("dvol", [dvol_row(d) for d in points])

    def save_funding(self, rates: Sequence[FundingRateUpdated]) -> None:
        self.save_to("funding", [funding_row(f) for f in rates])
