"""Reads of the market-data tables (``bars``, ``funding``, ``dvol``): what ``tm backfill`` resumes
from and what the trainer trains on.

Rows come back oldest first with prices as the stored exact decimals; every read is bounded by an
exclusive ``end_ms`` so that a training cut-off is applied in the query, not after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tm_common.db.tables import bars, dvol, funding
from tm_common.history import HistoryBar

#: The bar interval every table row of ``bars`` is read at (4 h bars).
INTERVAL_MIN = 240


async def _span(conn: AsyncConnection, col: sa.Column[int],
                *where: sa.ColumnElement[bool]) -> tuple[int, int] | None:
    row = (await conn.execute(sa.select(sa.func.min(col), sa.func.max(col)).where(*where))).first()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


async def bar_span_ms(conn: AsyncConnection, instrument: str,
                      interval_min: int = INTERVAL_MIN) -> tuple[int, int] | None:
    """Open times (ms) of the oldest and newest stored bar of ``instrument``, or None."""
    return await _span(conn, bars.c.open_time_ms, bars.c.instrument == instrument,
                       bars.c.interval_min == interval_min)


async def funding_span_ms(conn: AsyncConnection, instrument: str) -> tuple[int, int] | None:
    """Settle times (ms) of the oldest and newest stored funding rate of ``instrument``, or None."""
    return await _span(conn, funding.c.settle_time_ms, funding.c.instrument == instrument)


async def dvol_span_ms(conn: AsyncConnection, currency: str = "BTC") -> tuple[int, int] | None:
    """Days (ms) of the oldest and newest stored DVOL close of ``currency``, or None."""
    return await _span(conn, dvol.c.day_ms, dvol.c.currency == currency)


async def bar_counts(conn: AsyncConnection, instruments: Sequence[str],
                     interval_min: int = INTERVAL_MIN) -> dict[str, int]:
    """Stored bars per instrument (0 for one with none)."""
    q = (sa.select(bars.c.instrument, sa.func.count())
         .where(bars.c.instrument.in_(list(instruments)), bars.c.interval_min == interval_min)
         .group_by(bars.c.instrument))
    found = {str(r[0]): int(r[1]) for r in (await conn.execute(q)).all()}
    return {s: found.get(s, 0) for s in instruments}


async def read_bars(conn: AsyncConnection, instrument: str, end_ms: int | None = None,
                    interval_min: int = INTERVAL_MIN) -> list[HistoryBar]:
    """Bars of ``instrument`` with ``open_time_ms < end_ms`` (None: all), oldest first, as the
    history files' record (prices and volume: the stored decimals' exact text)."""
    q = sa.select(bars.c.open_time_ms, bars.c.open, bars.c.high, bars.c.low, bars.c.close,
                  bars.c.volume).where(bars.c.instrument == instrument,
                                       bars.c.interval_min == interval_min)
    if end_ms is not None:
        q = q.where(bars.c.open_time_ms < end_ms)
    rows = (await conn.execute(q.order_by(bars.c.open_time_ms))).all()
    return [HistoryBar(int(r[0]), *(str(Decimal(v)) for v in r[1:6])) for r in rows]


async def read_funding(conn: AsyncConnection, instrument: str,
                       end_ms: int | None = None) -> list[tuple[int, Decimal]]:
    """``(settle_time_ms, rate)`` of ``instrument`` settled before ``end_ms``, oldest first."""
    q = sa.select(funding.c.settle_time_ms, funding.c.rate).where(
        funding.c.instrument == instrument)
    if end_ms is not None:
        q = q.where(funding.c.settle_time_ms < end_ms)
    rows = (await conn.execute(q.order_by(funding.c.settle_time_ms))).all()
    return [(int(r[0]), Decimal(r[1])) for r in rows]


async def read_dvol(conn: AsyncConnection, currency: str = "BTC",
                    end_ms: int | None = None) -> list[tuple[int, float]]:
    """``(day_ms, value)`` of ``currency`` for days before ``end_ms``, oldest first."""
    q = sa.select(dvol.c.day_ms, dvol.c.value).where(dvol.c.currency == currency)
    if end_ms is not None:
        q = q.where(dvol.c.day_ms < end_ms)
    rows = (await conn.execute(q.order_by(dvol.c.day_ms))).all()
    return [(int(r[0]), float(r[1])) for r in rows]
