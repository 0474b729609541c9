"""Intra-bar marks through the portfolio's consumer on the in-memory bus, fed in lockstep by the
exchange sim's matching engine: valuations on ``portfolio.valuation`` between the bar closes,
the snapshots exactly those of a run without marks, and a restart that changes nothing."""

from __future__ import annotations

import json
from decimal import Decimal

from tm_app.testing.random_venue import RandomVenue, execution_event
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.streams import (
    EXEC_REPORT,
    MD_BAR,
    MD_MARK,
    PORTFOLIO_SNAPSHOT,
    PORTFOLIO_VALUATION,
    dlq,
)
from tm_common.events import MarkUpdated
from tm_portfolio.app import INPUTS
from tm_portfolio.handler import PortfolioHandler
from tm_portfolio.testing import H4_MS, bar_env, close_ns, fill_env, funding_env, mark_env, open_ms

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
N = 12
DIPS = (Decimal("0.99"), Decimal("0.97"), Decimal("1.02"))     # marks inside each bar


def make(bus: InMemoryBus) -> tuple[PortfolioHandler, Consumer]:
    h = PortfolioHandler(SYMS, Decimal(100_000))
    c = Consumer(bus, h, group="portfolio", consumer="p1", streams=list(INPUTS),
                 state_key="state:portfolio", clock=lambda: 42, retry_backoff_s=0.001)
    return h, c


async def run(bus, venue, consumer, start, stop, *, marks: bool, restart_at=None):
    """The mesh's order: bars of t, idle, t's fills, idle; then (with ``marks``) three rounds
    of marks inside bar t + 1, each a minute apart, before t + 1's bars."""
    last: dict[str, Decimal] = {}
    h = None
    for i in range(start, stop):
        if i == restart_at:
            consumer.stop()
            h, consumer = make(bus)            # a new process: state from the bus
        bars, execs = venue.step(i)
        for s in sorted(bars):
            last[s] = bars[s].close
            await bus.publish(MD_BAR, bar_env(s, i, bars[s].close))
        await consumer.run_until_idle()
        for e in execs + venue.trade(4):
            ev = execution_event(e)
            await bus.publish(EXEC_REPORT, funding_env(ev) if e.exec_type == "Funding"
                              else fill_env(ev, close_ns(i)))
        await consumer.run_until_idle()
        if marks:
            for k, f in enumerate(DIPS):
                for s in SYMS:
                    at = open_ms(i) + H4_MS + (k + 1) * 60_000 + SYMS.index(s)
                    await bus.publish(MD_MARK, mark_env(s, at, (last[s] * f).quantize(
                        Decimal("0.01"))))
                await consumer.run_until_idle()
    return h, consumer


async def entries(bus, stream):
    return [(f["event_id"], f["correlation_id"], f["ts_event_ns"], f["body"])
            for _, f in await bus.entries(stream)]


async def test_valuations_between_closes_and_the_snapshots_of_a_run_without_marks():
    plain, marked = InMemoryBus(), InMemoryBus()
    _, c = make(plain)
    await run(plain, RandomVenue(seed=7), c, 0, N, marks=False)
    h, c = make(marked)
    venue = RandomVenue(seed=7)
    await run(marked, venue, c, 0, N, marks=True)
    assert await entries(marked, PORTFOLIO_SNAPSHOT) == await entries(plain, PORTFOLIO_SNAPSHOT)
    vals = await entries(marked, PORTFOLIO_VALUATION)
    assert vals and await entries(plain, PORTFOLIO_VALUATION) == []
    bodies = [json.loads(v[3]) for v in vals]
    for (_, corr, ts, _), b in zip(vals, bodies, strict=True):
        assert corr == f"valuation:{b['at_ms']}" and int(ts) == b["at_ms"] * 1_000_000
        # strictly inside a bar: after the close of the newest snapshot's bar, before the next
        assert b["after_bar_ms"] + H4_MS < b["at_ms"] < b["after_bar_ms"] + 2 * H4_MS
    # the last valuation of the run is the book at the last marks, exactly
    last = bodies[-1]
    book = h.book
    marks = {s: p for s, (p, _) in book.intrabar.items()}
    want = book.ledger.cash() + sum((p.unrealised_pnl(marks.get(s, book.ledger.marks.get(s)))
                                     for s, p in book.ledger.positions.items()), Decimal(0))
    assert Decimal(last["equity"]) == want
    assert Decimal(last["peak_equity"]) == book.perf.peak_equity
    assert h.status()["intrabar"]["valuations"] == len(vals)


async def test_a_restart_mid_run_changes_no_valuation_and_no_snapshot():
    ref = InMemoryBus()
    _, c = make(ref)
    await run(ref, RandomVenue(seed=7), c, 0, N, marks=True)
    bus = InMemoryBus()
    _, c = make(bus)
    h2, _ = await run(bus, RandomVenue(seed=7), c, 0, N, marks=True, restart_at=N // 2)
    assert h2 is not None
    for stream in (PORTFOLIO_SNAPSHOT, PORTFOLIO_VALUATION):
        assert await entries(bus, stream) == await entries(ref, stream), stream
    # the same state (as JSON values: a restored book writes periods_per_year 2190 as 2190.0)
    saved = json.loads(await bus.load_state("state:portfolio"))
    want = json.loads(await ref.load_state("state:portfolio"))
    assert saved == want and saved["intrabar"] and saved["valuations"] > 0


async def test_a_bad_mark_is_dead_lettered_and_the_next_one_values():
    bus = InMemoryBus()
    h, c = make(bus)
    venue = RandomVenue(seed=7)
    await run(bus, venue, c, 0, 3, marks=False)
    assert any(p.size for p in h.book.ledger.positions.values())
    at = open_ms(3) + 60_000
    bad = mark_env("BTCUSDT", at, "1")
    bad = bad.__class__(**{**{f: getattr(bad, f) for f in bad.__struct_fields__},
                           "body": MarkUpdated(instrument="BTCUSDT", at_ms=at,
                                               mark_price=Decimal(0))})
    await bus.publish(MD_MARK, bad)
    await bus.publish(MD_MARK, mark_env("BTCUSDT", at + 1, "30000"))
    await c.run_until_idle()
    (dead,) = await bus.entries(dlq(MD_MARK))
    assert "mark price must be finite and > 0" in dead[1]["dlq_reason"]
    (val,) = await entries(bus, PORTFOLIO_VALUATION)
    assert json.loads(val[3])["at_ms"] == at + 1
