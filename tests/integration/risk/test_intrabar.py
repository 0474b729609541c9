"""Intra-bar protection on the real Redis: a mark drop between two 4h closes trips the breaker
then, and the book is flat before the next close.

A partial mesh in this process, each service from its own ``build`` on a Redis bus: the
portfolio, risk and the executor (against the in-process venue: the exchange simulator's
matching engine). Shipped bars on ``md.bar`` and scripted long targets in lockstep open a book;
then, inside the next bar, ticker marks on ``md.mark`` (as ingest's poller publishes them): a 1 %
dip values the book and changes nothing, a 12 % drop trips the breaker (drawdown, "intra-bar"
in its reason) at the mark's time, risk flattens every position, the executor closes them on the
venue, all before the next bar is published. The next bar's snapshot is flat and nothing is
flattened twice. A restart of the portfolio and risk between the two marks (new builds on the
same namespace: state from Redis) gives the same orders, breaker events, venue orders and saved
states; a mark older than the last one is ignored, after the restart too (it would trip).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
import tm_risk.commands  # noqa: F401 - registers breaker.command_issued for decoding
from tm_common.bus.streams import (
    MD_BAR,
    MD_MARK,
    PORTFOLIO_SNAPSHOT,
    PORTFOLIO_VALUATION,
    RISK_BREAKER,
    RISK_ORDER,
)
from tm_common.events import BarClosed, MarkUpdated
from tm_ingest.publisher import bar_envelope, mark_envelope

from . import partial_mesh
from .partial_mesh import BAR_MS, SYMBOLS

START_MS = 1_735_689_600_000            # 2025-01-01 00:00 UTC
BARS = 14


class Mesh(partial_mesh.Mesh):
    async def marks(self, at_ms: int, factor: str, syms=SYMBOLS, t: int = 0) -> None:
        for i, sym in enumerate(syms):
            price = (self.close_of(sym, t) * Decimal(factor)).quantize(Decimal("0.01"))
            m = MarkUpdated(instrument=sym, at_ms=at_ms + i, mark_price=price, last_price=price)
            await self.bus.publish(MD_MARK, mark_envelope(m, 0))
        await self.idle()


async def _scenario(redis_url: str, restart: bool) -> tuple[dict, dict]:
    mesh = Mesh(redis_url, f"tmtest:{uuid.uuid4().hex[:8]}:intrabar:", start_ms=START_MS)
    seen: dict = {}
    try:
        await mesh.start()
        last = await mesh.open_book(BARS)
        close = last + BAR_MS                            # the newest bar's close
        positions = {s: p.size for s, p in mesh.venue.state.engine.account.positions.items()
                     if p.size}
        seen["positions"] = positions
        seen["orders_before"] = len(await mesh.bodies(RISK_ORDER))
        await mesh.marks(close + 60_000, "0.99", t=last)            # a 1 % dip: valued only
        seen["after_dip"] = (len(await mesh.bodies(PORTFOLIO_VALUATION)),
                             await mesh.bodies(RISK_BREAKER))
        if restart:
            await mesh.restart()
        # older than the dip's BTC mark: ignored by the book (restored or not; else a trip)
        await mesh.marks(close + 30_000, "0.40", syms=("BTCUSDT",), t=last)
        seen["stale_ignored"] = await mesh.bodies(RISK_BREAKER) == []
        await mesh.marks(close + 120_000, "0.88", t=last)           # a 12 % drop: trips
        seen["breaker"] = await mesh.bodies(RISK_BREAKER)
        seen["venue_after_trip"] = {s: p.size for s, p in
                                    mesh.venue.state.engine.account.positions.items() if p.size}
        # the next bar: its snapshot shows the book flat and nothing is flattened again
        t = close
        mesh.venue.advance(t)
        for sym in SYMBOLS:
            c = mesh.close_of(sym, last) * Decimal("0.88")
            await mesh.bus.publish(MD_BAR, bar_envelope(BarClosed(
                instrument=sym, open_time_ms=t, close_time_ms=t + BAR_MS - 1, open=c, high=c,
                low=c, close=c, volume=Decimal(1), source="replay"), 0))
        await mesh.idle()
        seen["next_snapshot"] = (await mesh.bodies(PORTFOLIO_SNAPSHOT))[-1]
        return await mesh.result(), seen
    finally:
        await mesh.close()


@pytest.mark.timeout(180)
async def test_an_intra_bar_drop_trips_flattens_before_the_next_close_and_a_restart_keeps_it(
        redis_url):
    clean, seen = await _scenario(redis_url, restart=False)
    assert seen["stale_ignored"]
    assert set(seen["positions"]) == set(SYMBOLS)                   # the book was long
    n_vals, breaker = seen["after_dip"]
    assert n_vals == 3 and breaker == []                            # valued, under the limit
    (b,) = seen["breaker"]
    last = START_MS + (BARS - 1) * BAR_MS
    close = last + BAR_MS
    assert (b.from_state, b.to_state, b.trigger) == ("CLOSED", "OPEN", "drawdown")
    assert "intra-bar drawdown" in b.reason and b.at_ms == close + 120_000
    assert b.at_ms < close + BAR_MS                                 # before the next close
    assert seen["venue_after_trip"] == {}                           # flat on the venue
    orders = [json.loads(o[2]) for o in clean["orders"]][seen["orders_before"]:]
    assert sorted((o["instrument"], o["reduce_only"], Decimal(o["target_qty"])) for o in orders) \
        == [(s, True, Decimal(0)) for s in SYMBOLS]                 # one flatten each, no more
    snap = seen["next_snapshot"]
    assert snap.bar_time_ms == close and snap.positions == ()      # the snapshot is flat

    restarted, seen_r = await _scenario(redis_url, restart=True)
    assert seen_r["stale_ignored"]
    assert restarted == clean
