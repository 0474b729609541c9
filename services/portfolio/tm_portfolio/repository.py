"""Fills and portfolio snapshots to the database: idempotent upserts, written behind the stream.

Keys: ``fills.exec_id`` and ``portfolio_snapshots.bar_time_ms`` (the positions of a snapshot are
its ``positions`` JSON column: the schema has no positions table). Rows are queued by the handler
and written by the shared write-behind writer (:mod:`tm_common.db.writer`: rounds retried with
backoff, in order), so a database outage never stops the portfolio (or trading). The portfolio
uses its options: the schema is migrated (``prepare``) before the first write, retried like any
write; the queue is bounded by ``max_backlog`` batches, beyond which the oldest are dropped and
counted; ``on_change`` keeps the ``tm_portfolio_db_*`` metrics current.
"""

from __future__ import annotations

from tm_common.db.tables import fills as fills_table
from tm_common.db.tables import portfolio_snapshots as snapshots_table
from tm_common.db.writer import TablesWriter
from tm_common.events import OrderFilled, PortfolioSnapshotted

#: kind → (table, natural key) of a queued batch.
_TABLES = {"fills": (fills_table, ("exec_id",)),
           "snapshots": (snapshots_table, ("bar_time_ms",))}


def fill_row(f: OrderFilled, event_id: str | None) -> dict:
    return {"exec_id": f.exec_id, "intent_id": f.intent_id, "order_link_id": f.order_link_id,
            "order_id": f.order_id, "instrument": f.instrument, "side": f.side, "qty": f.qty,
            "price": f.price, "fee": f.fee, "fee_currency": f.fee_currency,
            "is_maker": f.is_maker, "exec_time_ms": f.exec_time_ms, "event_id": event_id}


def snapshot_row(s: PortfolioSnapshotted, event_id: str | None) -> dict:
    return {"bar_time_ms": s.bar_time_ms, "equity": s.equity, "cash": s.cash,
            "realised_pnl": s.realised_pnl, "unrealised_pnl": s.unrealised_pnl, "fees": s.fees,
            "funding": s.funding, "transfers": s.transfers, "peak_equity": s.peak_equity,
            "drawdown": s.drawdown,
            "positions": [{"instrument": p.instrument, "qty": str(p.qty),
                           "avg_price": str(p.avg_price), "mark_price": str(p.mark_price),
                           "unrealised_pnl": str(p.unrealised_pnl)} for p in s.positions],
            "event_id": event_id}


class PortfolioRepository(TablesWriter):
    """Queues fill and snapshot rows and writes them with retries (:class:`TablesWriter`, whose
    ``prepare``, ``max_backlog`` and ``on_change`` the service sets)."""

    service = "portfolio"
    tables = _TABLES

    def save_fill(self, fill: OrderFilled, event_id: str) -> None:
        self.save_to("fills", [fill_row(fill, event_id)])

    def save_snapshot(self, snap: PortfolioSnapshotted, event_id: str) -> None:
        self.save_to("snapshots", [snapshot_row(snap, event_id)])
