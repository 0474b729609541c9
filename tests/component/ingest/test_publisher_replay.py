"""Publisher exactly-once and lockstep replay on the in-memory bus."""

import asyncio
import json

import pytest
from tm_common.bus import Consumer, InMemoryBus
from tm_common.bus.streams import MD_BAR, MD_DVOL
from tm_common.history import load_bars
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.replay import (
    GroupsIdleProbe,
    HistoryBars,
    ReplaySource,
    history_bars,
    history_dvol,
)

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START = 1_672_531_200_000          # 2023-01-01
END = START + 60 * 4 * 3600 * 1000


async def published(bus, stream=MD_BAR):
    return [(f["type"], json.loads(f["body"])) for _, f in await bus.entries(stream, 10**6)]


async def test_publisher_exactly_once_across_restart():
    bus = InMemoryBus()
    bars = history_bars(["BTCUSDT"], START, END)
    p = BarPublisher(bus, "st")
    await p.load()
    assert len(await p.publish_bars(bars[:10])) == 10
    p2 = BarPublisher(bus, "st")          # a restarted process
    await p2.load()
    assert await p2.publish_bars(bars[:12]) == bars[10:12]
    assert p2.stats.duplicates == 1 and p2.stats.late == 9
    assert await p2.publish_bars(bars[5:6]) == []
    got = [b["open_time_ms"] for _, b in await published(bus)]
    assert got == [b.open_time_ms for b in bars[:12]]


async def test_failed_publish_is_not_marked(monkeypatch):
    bus = InMemoryBus()
    bars = history_bars(["BTCUSDT"], START, END)
    p = BarPublisher(bus, "st")
    await p.publish_bars(bars[:2])

    async def down(*a, **k):
        raise ConnectionError("redis down")
    monkeypatch.setattr(bus, "publish_many", down)
    with pytest.raises(ConnectionError):
        await p.publish_bars(bars[2:4])
    monkeypatch.undo()
    assert await p.publish_bars(bars[2:4]) == bars[2:4]


async def test_lockstep_replay_publishes_exactly_the_shipped_bars_in_order():
    bus = InMemoryBus()
    seen = []

    class Recorder:
        async def handle(self, ev):
            # in lockstep, no bar of a later time may be visible while this one is handled
            later = [f for _, f in await bus.entries(MD_BAR, 10**6)
                     if json.loads(f["body"])["open_time_ms"] > ev.body.open_time_ms]
            assert not later
            seen.append((ev.body.instrument, ev.body.open_time_ms, str(ev.body.close)))
            return []
    c = Consumer(bus, Recorder(), group="regime", consumer="c", streams=[MD_BAR], block_ms=5)
    await c.start()
    task = asyncio.create_task(c.run())
    pub = BarPublisher(bus, "st")
    src = ReplaySource(pub, history_bars(SYMS, START, END), history_dvol(START, END),
                       probe=GroupsIdleProbe(bus, [MD_BAR], timeout_s=10))
    n = await src.run()
    c.stop()
    await task
    expected = sorted(((s, b.open_time_ms, b.close) for s in SYMS for b in load_bars(s, START, END)),
                      key=lambda x: (x[1], x[0]))
    assert n == len(expected) == 61 * 3
    assert seen == expected
    dvol = await published(bus, MD_DVOL)
    assert dvol and all(d["known_at_ms"] <= END + 4 * 3600 * 1000 for _, d in dvol)


async def test_replay_covers_the_shipped_gap_and_counts_it():
    bus = InMemoryBus()
    pub = BarPublisher(bus, "st")
    gap_start = 1_679_616_000_000 - 8 * 4 * 3600 * 1000   # around 2023-03-24
    bars = history_bars(["BTCUSDT"], gap_start, gap_start + 20 * 4 * 3600 * 1000)
    await ReplaySource(pub, bars).run()
    assert pub.stats.gaps == 1 and pub.stats.gap_bars == 1


async def test_history_made_while_replayed_publishes_what_the_list_does():
    """The ingest service's lazy history (``HistoryBars``) and the list the backtest replays give
    the same entries, in the same order, with the same progress, on a window where one symbol's
    history starts later than the others'."""
    async def replay(bars):
        bus = InMemoryBus()
        steps = []
        src = ReplaySource(BarPublisher(bus, "st"), bars, history_dvol(START, END),
                           probe=GroupsIdleProbe(bus, [MD_BAR], timeout_s=10),
                           on_progress=lambda p: steps.append((p.step, p.steps, p.bar_time_ms)))
        return await src.run(), await published(bus), await published(bus, MD_DVOL), steps
    lazy = HistoryBars(SYMS, START, END)
    assert lazy.bar_times() == 61
    assert [b.instrument for b in lazy][:3] == sorted(SYMS)
    assert await replay(lazy) == await replay(history_bars(SYMS, START, END))
    late = load_bars("SOLUSDT", START, END)[10].open_time_ms      # SOL from its 11th bar on
    mixed = HistoryBars(["BTCUSDT"], START, END)
    mixed._rows["SOLUSDT"] = load_bars("SOLUSDT", late, END)
    expected = sorted(history_bars(["BTCUSDT"], START, END) + history_bars(["SOLUSDT"], late, END),
                      key=lambda b: (b.open_time_ms, b.instrument))
    assert list(mixed) == expected
