"""The portfolio handler on the in-memory bus with the real consumer loop, fed in lockstep by the
exchange sim's matching engine: one snapshot per bar time, deterministic, restart-proof."""

import json
from decimal import Decimal

from tm_app.testing.random_venue import RandomVenue, execution_event
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.streams import EXEC_REPORT, MD_BAR, PORTFOLIO_SNAPSHOT, dlq
from tm_common.events import (
    Envelope,
    FundingSettled,
    OrderRejected,
    OrderReported,
    PositionReconciled,
)
from tm_portfolio.handler import PortfolioHandler
from tm_portfolio.testing import (
    bar_env,
    close_ns,
    fill_env,
    funding_env,
    make_fill,
    open_ms,
)

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
N = 16


class Crash(BaseException):
    """Stands for the process dying mid-event (not caught by the consumer)."""


class Rows:
    """A sink like the repository: rows keyed as the tables' primary keys."""

    def __init__(self, crash_on_fill: int | None = None) -> None:
        self.fills: dict[str, dict] = {}
        self.snapshots: dict[int, tuple] = {}
        self.calls, self.crash_on_fill = 0, crash_on_fill

    def save_fill(self, fill, event_id):
        self.calls += 1
        if self.calls == self.crash_on_fill:
            raise Crash()
        self.fills[fill.exec_id] = (fill, event_id)

    def save_snapshot(self, snap, event_id):
        self.snapshots[snap.bar_time_ms] = (snap, event_id)


def make(bus, sink=None):
    h = PortfolioHandler(SYMS, Decimal(100_000), sink=sink)
    c = Consumer(bus, h, group="portfolio", consumer="p1", streams=[EXEC_REPORT, MD_BAR],
                 state_key="state:portfolio", clock=lambda: 42, retry_backoff_s=0.001)
    return h, c


async def publish_bars(bus, venue, i):
    bars, execs = venue.step(i)
    for s in sorted(bars):
        await bus.publish(MD_BAR, bar_env(s, i, bars[s].close))
    return execs


async def publish_effects(bus, venue, i, execs):
    for e in execs + venue.trade(4):
        ev = execution_event(e)
        env = funding_env(ev) if e.exec_type == "Funding" else fill_env(ev, close_ns(i))
        await bus.publish(EXEC_REPORT, env)


async def lockstep(bus, consumer, venue, start, stop):
    """The mesh's order: bars of t, pipeline idle, t's fills, pipeline idle, then t + 1."""
    for i in range(start, stop):
        execs = await publish_bars(bus, venue, i)
        await consumer.run_until_idle()
        await publish_effects(bus, venue, i, execs)
        await consumer.run_until_idle()


async def snapshots(bus):
    return [(f["event_id"], f["correlation_id"], f["ts_event_ns"], f["ts_init_ns"], f["body"])
            for _, f in await bus.entries(PORTFOLIO_SNAPSHOT)]


async def full_run(seed=7):
    bus, venue, rows = InMemoryBus(), RandomVenue(seed=seed), Rows()
    h, c = make(bus, rows)
    await lockstep(bus, c, venue, 0, N)
    return bus, venue, h, rows


async def test_one_snapshot_per_bar_time_matching_the_venue():
    bus, venue, h, rows = await full_run()
    snaps = await snapshots(bus)
    bodies = [json.loads(s[4]) for s in snaps]
    assert [b["bar_time_ms"] for b in bodies] == [open_ms(i) for i in range(N)]
    assert [s[1] for s in snaps] == [f"portfolio:{open_ms(i)}" for i in range(N)]
    assert [int(s[2]) for s in snaps] == [close_ns(i) for i in range(N)]
    st = h.status()
    assert Decimal(st["equity"]) == venue.wallet()["equity"]            # every fill and funding in
    assert Decimal(st["cash"]) == venue.wallet()["wallet_balance"]
    for s, p in venue.engine.account.positions.items():
        got = st["positions"].get(s)
        assert (Decimal(got["qty"]) if got else Decimal(0)) == p.size
    assert len(rows.fills) == sum(1 for e in venue.engine.executions if e.exec_type == "Trade") > 0
    assert sorted(rows.snapshots) == [open_ms(i) for i in range(N)]
    eids = {e for _, e in rows.snapshots.values()}
    assert eids == {s[0] for s in snaps}                                 # rows name their event
    assert st["statistics"]["snapshots"] == N and st["statistics"]["sharpe"] is not None


async def test_two_runs_are_identical():
    a, *_ = await full_run()
    b, *_ = await full_run()
    assert await snapshots(a) == await snapshots(b)


async def test_restart_from_saved_state_gives_identical_results():
    ref, *_ = await full_run()
    bus, venue = InMemoryBus(), RandomVenue(seed=7)
    _, c1 = make(bus)
    await lockstep(bus, c1, venue, 0, N // 2)
    c1.stop()
    h2, c2 = make(bus)                    # a new process: state restored from the bus
    await lockstep(bus, c2, venue, N // 2, N)
    assert await snapshots(bus) == await snapshots(ref)
    assert h2.book.last_snapshot_ms == open_ms(N - 1)


async def test_restart_with_a_backlog_still_matches():
    """Down while bar t and its fills were published: on restart the backlog is read in entry
    order and snapshot t is unchanged."""
    ref, *_ = await full_run()
    bus, venue = InMemoryBus(), RandomVenue(seed=7)
    _, c1 = make(bus)
    await lockstep(bus, c1, venue, 0, 5)
    c1.stop()
    execs = await publish_bars(bus, venue, 5)
    await publish_effects(bus, venue, 5, execs)
    h2, c2 = make(bus)
    await c2.run_until_idle()
    await lockstep(bus, c2, venue, 6, N)
    assert await snapshots(bus) == await snapshots(ref)


async def test_fills_seen_before_their_bars_are_deferred_and_snapshot_is_unchanged():
    """Entry ids of two streams can tie within a millisecond on Redis, so t's fills may be read
    before t's bars: the book defers them and snapshot t is the same as in order."""
    ref, *_ = await full_run()
    bus, venue = InMemoryBus(), RandomVenue(seed=7)
    h, c = make(bus)
    await lockstep(bus, c, venue, 0, 5)
    bars, execs = venue.step(5)
    await publish_effects(bus, venue, 5, execs)             # fills of t first ...
    for s in sorted(bars):                                  # ... then the bars of t
        await bus.publish(MD_BAR, bar_env(s, 5, bars[s].close))
    await c.run_until_idle()
    assert h.book.deferrals > 0
    await lockstep(bus, c, venue, 6, N)
    assert await snapshots(bus) == await snapshots(ref)


async def test_crash_mid_event_then_restart_books_each_fill_once():
    ref, _, ref_h, ref_rows = await full_run()
    bus, venue = InMemoryBus(), RandomVenue(seed=7)
    rows = Rows(crash_on_fill=10)
    h1, c1 = make(bus, rows)
    crashed = False
    for i in range(N):
        if not crashed:
            try:
                await lockstep(bus, c1, venue, i, i + 1)
                continue
            except Crash:
                crashed = True
                rows.crash_on_fill = None
                h1, c1 = make(bus, rows)  # restart: pending entry redelivered, state reloaded
                await c1.run_until_idle()
                continue
        await lockstep(bus, c1, venue, i, i + 1)
    assert crashed
    assert await snapshots(bus) == await snapshots(ref)
    assert rows.fills.keys() == ref_rows.fills.keys()
    assert h1.status() == ref_h.status()


async def test_ignored_and_bad_events():
    bus = InMemoryBus()
    h, c = make(bus)
    for s in SYMS:
        await bus.publish(MD_BAR, bar_env(s, 0, "100"))
    rep = OrderReported(intent_id="i", order_link_id="l", order_id="o", instrument="BTCUSDT",
                        status="Filled")
    rej = OrderRejected(instrument="BTCUSDT", bar_time_ms=open_ms(0), reason="limit")
    for n, body in enumerate((rep, rej)):
        await bus.publish(EXEC_REPORT, Envelope.root(body, key=str(n), correlation_id="x",
                                                     ts_event_ns=1, ts_init_ns=1))
    await bus.publish(EXEC_REPORT, fill_env(make_fill("bad", "BTCUSDT", "Buy", "0", "100"), 1))
    fill = make_fill("e1", "BTCUSDT", "Buy", "1", "100", "0.1")
    await bus.publish(EXEC_REPORT, fill_env(fill, close_ns(0)))
    await bus.publish(EXEC_REPORT, Envelope.root(fill, key="again", correlation_id="x",
                                                 ts_event_ns=1, ts_init_ns=1))   # same exec_id
    await bus.publish_raw(EXEC_REPORT, {"type": "order.filled", "body": "{"})
    await c.run_until_idle()
    await c.run_until_idle()
    st = h.status()
    assert st["events"] == {"bar.closed": 3, "order.reported": 1, "order.rejected": 1,
                            "order.filled": 2}
    assert st["positions"]["BTCUSDT"]["qty"] == "1" and st["fees"] == "0.1"
    assert st["duplicates"] == 1
    assert await bus.length(dlq(EXEC_REPORT)) == 2       # qty 0 (not counted) and the malformed
    assert await bus.length(PORTFOLIO_SNAPSHOT) == 1


async def test_reconciliation_is_adopted_and_funding_counted_once():
    bus = InMemoryBus()
    h, c = make(bus)
    for s in SYMS:
        await bus.publish(MD_BAR, bar_env(s, 0, "100"))
    await c.run_until_idle()
    await bus.publish(EXEC_REPORT, fill_env(make_fill("e1", "ETHUSDT", "Buy", "1", "100"),
                                            close_ns(0)))
    pay = FundingSettled(instrument="ETHUSDT", settle_time_ms=open_ms(1), rate=Decimal("0.0001"),
                         position_qty=Decimal(1), mark_price=Decimal(100), payment=Decimal("0.01"))
    await bus.publish(EXEC_REPORT, funding_env(pay))
    await bus.publish(EXEC_REPORT, Envelope.root(pay, key="dup", correlation_id="x",
                                                 ts_event_ns=1, ts_init_ns=1))
    rec = PositionReconciled(instrument="ETHUSDT", exchange_qty=Decimal(3),
                             portfolio_qty=Decimal(1), avg_price=Decimal(99), reason="differs")
    await bus.publish(EXEC_REPORT, Envelope.root(rec, key="r1", correlation_id="x",
                                                 ts_event_ns=close_ns(0), ts_init_ns=1))
    await c.run_until_idle()
    st = h.status()
    assert st["positions"]["ETHUSDT"] == {"qty": "3", "avg_price": "99", "mark_price": "100",
                                          "unrealised_pnl": "3"}
    assert st["funding"] == "0.01" and st["duplicates"] == 1
    assert st["reconciliations"] == 1
    [adj] = st["last_adjustments"]
    assert (adj["qty_before"], adj["qty_after"], adj["unrealised_change"]) == ("1", "3", "3")
    assert Decimal(st["equity"]) == Decimal(100_000) - Decimal("0.01") + 3
