"""The ``targets`` table, written behind the stream.

Writes never block sizing: rows are queued and written by a background task with retries, in
order, as idempotent upserts keyed by ``(instrument, bar_time_ms)`` (a redelivered input rewrites
the same row). ``sizing.target`` holds the same facts, so a row still queued at a crash is not
lost for good.
"""

from __future__ import annotations

from tm_common.db.tables import targets as targets_table
from tm_common.db.writer import WriteBehindWriter


class TargetRepository(WriteBehindWriter):
    """Queues target rows (dicts of the ``targets`` columns) and writes them with retries."""

    service, table, key = "sizer", targets_table, ("instrument", "bar_time_ms")
