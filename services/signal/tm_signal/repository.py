"""The signal service's data: the ``signals`` table (written behind the stream) and the bar
history that warms the features after a model load.

Writes never block trading: rows are queued and written by a background task with retries, in
order, as idempotent upserts keyed by ``(instrument, bar_time_ms)`` (a redelivered bar rewrites
the same row). History reads are on the warm-up path only.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from tm_common import history as files
from tm_common.db.tables import bars as bars_table
from tm_common.db.tables import dvol as dvol_table
from tm_common.db.tables import funding as funding_table
from tm_common.db.tables import signals as signals_table
from tm_common.db.writer import WriteBehindWriter
from tm_quant.features import Bar


class SignalRepository(WriteBehindWriter):
    """Queues signal rows (dicts of the ``signals`` columns) and writes them with retries."""

    service, table, key = "signal", signals_table, ("instrument", "bar_time_ms")


class BarHistory:
    """Bars, DVOL and funding for warm-up: the shipped files, overridden and extended by the
    database.

    The files (``tm_common.history``) cover the shipped window; the ``bars``/``dvol``/``funding``
    tables hold what ingest wrote (live, backfill, replay). For a given time the database row
    wins. Either source may be absent (``engine`` None, or no file for the instrument).
    """

    def __init__(self, engine: AsyncEngine | None = None, history_dir: str | None = None,
                 interval_min: int = 240) -> None:
        self.engine, self.history_dir, self.interval_min = engine, history_dir, interval_min

    async def bars(self, instrument: str, start_ms: int, end_ms: int) -> list[Bar]:
        """Bars with ``start_ms <= open time <= end_ms``, ascending (prices as float)."""
        out: dict[int, Bar] = {}
        try:
            for b in files.load_bars(instrument, start_ms, end_ms, directory=self.history_dir):
                out[b.open_time_ms] = Bar(b.open_time_ms, float(b.open), float(b.high),
                                          float(b.low), float(b.close), float(b.volume))
        except files.HistoryFileError:
            pass
        if self.engine is not None:
            t = bars_table.c
            q = sa.select(t.open_time_ms, t.open, t.high, t.low, t.close, t.volume).where(
                t.instrument == instrument, t.interval_min == self.interval_min,
                t.open_time_ms >= start_ms, t.open_time_ms <= end_ms)
            async with self.engine.connect() as conn:
                for r in (await conn.execute(q)).all():
                    out[int(r[0])] = Bar(int(r[0]), *(float(x) for x in r[1:]))
        return [out[k] for k in sorted(out)]

    async def dvol(self, known_by_ms: int, currency: str = "BTC") -> list[tuple[int, float]]:
        """``(known_at_ms, value)`` of DVOL points known at ``known_by_ms``, ascending."""
        out: dict[int, tuple[int, float]] = {}
        try:
            for p in files.load_dvol(currency, directory=self.history_dir):
                if p.known_at_ms <= known_by_ms:
                    out[p.day_ms] = (p.known_at_ms, float(p.close))
        except files.HistoryFileError:
            pass
        if self.engine is not None:
            t = dvol_table.c
            q = sa.select(t.day_ms, t.known_at_ms, t.value).where(
                t.currency == currency, t.known_at_ms <= known_by_ms)
            async with self.engine.connect() as conn:
                for r in (await conn.execute(q)).all():
                    out[int(r[0])] = (int(r[1]), float(r[2]))
        return sorted(out.values())

    async def funding(self, instrument: str, known_by_ms: int) -> list[tuple[int, float]]:
        """``(settle_time_ms, rate)`` of ``instrument``'s funding rates settled at or before
        ``known_by_ms`` (a rate is known from its settlement), ascending."""
        out: dict[int, float] = {}
        try:
            for f in files.load_funding(instrument, directory=self.history_dir):
                if f.time_ms <= known_by_ms:
                    out[f.time_ms] = float(f.rate)
        except files.HistoryFileError:
            pass
        if self.engine is not None:
            t = funding_table.c
            q = sa.select(t.settle_time_ms, t.rate).where(
                t.instrument == instrument, t.settle_time_ms <= known_by_ms)
            async with self.engine.connect() as conn:
                for r in (await conn.execute(q)).all():
                    out[int(r[0])] = float(r[1])
        return sorted(out.items())
