"""The venue's stop loss while the mesh is down, end to end on the real Redis: a partial mesh
(portfolio, risk, the executor with ``venue_stop_loss`` 0.08, against the in-process venue)
opens a long book on the shipped history just before the FTX crash of November 2022; the
executor's stop keeper puts a stop under each position; then the mesh is down while the venue
alone runs through the crash, and every stop fires. When the mesh is back, the keeper's first
check hands the three closes to the handler, the missed bars follow: the portfolio books the
closes as fills, the book is flat in every snapshot after the outage, risk sends nothing (no
flatten of positions the venue no longer holds), and the portfolio's equity is the venue's to
the last decimal."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import tm_risk.commands  # noqa: F401 - registers breaker.command_issued for decoding
from tm_common.bus.streams import EXEC_REPORT, PORTFOLIO_SNAPSHOT, RISK_ORDER
from tm_common.events import OrderFilled, PortfolioSnapshotted, PositionReconciled
from tm_exchange_sim.serialise import execution_dict, wallet_entry
from tm_executor.domain.stops import stop_price

from .partial_mesh import BAR_MS, SYMBOLS, Mesh

START_MS = 1_667_520_000_000            # 2022-11-04 00:00 UTC
BOOK_BARS = 14                          # risk sizes from its 8th bar (var_min_obs)
BACK_MS = 1_668_081_600_000             # 2022-11-10 12:00: the mesh is back for this bar
RATIO = 0.08                            # BTC's stop (36 % of equity) 22 % below: Nov 9 16:00


@pytest.mark.timeout(180)
async def test_the_venue_s_stops_close_the_book_while_the_mesh_is_down_and_it_is_booked_exactly(
        redis_url):
    mesh = Mesh(redis_url, f"tmtest:{uuid.uuid4().hex[:8]}:venuestop:", start_ms=START_MS,
                executor={"venue_stop_loss": RATIO})
    try:
        await mesh.start()
        last = await mesh.open_book(BOOK_BARS)
        engine = mesh.venue.state.engine
        keeper = mesh.executor_service.stops
        await keeper.check_once()                               # as its task does after a fill
        equity = Decimal(wallet_entry(engine)["totalEquity"])
        held = {s: p for s, p in engine.account.positions.items() if p.size}
        assert set(held) == set(SYMBOLS) and all(p.size > 0 for p in held.values())
        for sym, p in held.items():
            tick = engine.instruments[sym].tick_size
            assert p.stop_loss == stop_price(p.size, p.avg_price, equity, RATIO, tick), sym
        orders_before = len(await mesh.bodies(RISK_ORDER))

        # the mesh is down: the venue alone runs through the crash, bar by bar
        t = last + BAR_MS
        while t < BACK_MS:
            mesh.venue.advance(t)
            t += BAR_MS
        assert not any(p.size for p in engine.account.positions.values())
        closes = [execution_dict(e) for e in engine.executions
                  if e.exec_type == "Trade" and e.order_link_id == ""]
        assert sorted(c["symbol"] for c in closes) == sorted(SYMBOLS)
        assert {c["stopOrderType"] for c in closes} == {"StopLoss"}

        # back: the keeper's first check, then the missed bars, in lockstep, no new targets
        await keeper.check_once()
        await mesh.idle()
        await mesh.bars_in_lockstep(last + BAR_MS, BACK_MS)

        report = await mesh.bodies(EXEC_REPORT)
        stop_fills = [b for b in report if isinstance(b, OrderFilled)
                      and b.intent_id.startswith("stop:")]
        assert sorted(f.exec_id for f in stop_fills) == sorted(c["execId"] for c in closes)
        assert not [b for b in report if isinstance(b, PositionReconciled)]
        assert len(await mesh.bodies(RISK_ORDER)) == orders_before    # nothing flattened
        snaps = [s for s in await mesh.bodies(PORTFOLIO_SNAPSHOT)
                 if isinstance(s, PortfolioSnapshotted) and s.bar_time_ms > last]
        assert snaps and all(s.positions == () for s in snaps)
        assert snaps[-1].bar_time_ms == BACK_MS
        venue_equity = engine.wallet()["equity"]                 # exact (the API rounds it)
        assert snaps[-1].equity == venue_equity
        assert venue_equity < equity * Decimal("0.8")            # the crash cost over 20 %
    finally:
        await mesh.close()
