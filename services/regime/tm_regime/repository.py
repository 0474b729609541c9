"""The ``regimes`` table, written behind the stream: rows are queued and written by a background
task with retries, in order, as idempotent upserts keyed by ``(instrument, bar_time_ms)``.
Trading never waits for the database."""

from __future__ import annotations

from tm_common.db.tables import regimes as regimes_table
from tm_common.db.writer import WriteBehindWriter


class RegimeRepository(WriteBehindWriter):
    """Queues regime rows (dicts of the ``regimes`` columns) and writes them with retries."""

    service, table, key = "regime", regimes_table, ("instrument", "bar_time_ms")
