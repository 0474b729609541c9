"""Replay publishes the shipped funding on md.funding at the right times: a rate goes out just
before the first bar whose close is at or after its settle time, never earlier, once."""

from decimal import Decimal

from tm_common.bus import InMemoryBus
from tm_common.bus.streams import MD_BAR, MD_FUNDING
from tm_common.history import load_funding
from tm_ingest.domain.bars import INTERVAL_MS
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.replay import ReplaySource, history_bars, history_funding

SYMS = ("BTCUSDT", "ETHUSDT")
START = 1_672_531_200_000          # 2023-01-01
END = START + 30 * INTERVAL_MS     # 5 days


async def _replay(bus, publisher, symbols=SYMS):
    order: list[tuple[str, object]] = []
    real = bus.publish_many

    async def spy(outputs, **kw):
        for o in outputs:
            order.append((o.stream, o.envelope.body))
        return await real(outputs, **kw)
    bus.publish_many = spy
    src = ReplaySource(publisher, history_bars(symbols, START, END),
                       funding=history_funding(symbols, START, END))
    await src.run()
    return order


async def test_replay_publishes_shipped_funding_at_settle_time_once():
    bus = InMemoryBus()
    pub = BarPublisher(bus, "st")
    await pub.load()
    order = await _replay(bus, pub)
    published_bars_close: list[int] = []       # closes of the bars published so far
    funding = []
    for stream, body in order:
        if stream == MD_BAR:
            published_bars_close.append(body.open_time_ms + INTERVAL_MS)
        else:
            assert stream == MD_FUNDING
            funding.append(body)
            # known at its settle time: no bar closing at/after it has gone out before it ...
            assert all(c < body.settle_time_ms for c in published_bars_close), body
            # ... and it is not held back: it goes out before the next bar
    closes = sorted({c for c in published_bars_close})
    for f in funding:
        later = [c for c in closes if c >= f.settle_time_ms]
        assert later, f                          # only rates up to the last close are replayed
    # exactly the shipped rates of the window (from one interval before the start), once
    for sym in SYMS:
        want = [(r.time_ms, r.rate_decimal) for r in load_funding(sym)
                if START - 8 * 3600 * 1000 <= r.time_ms <= END + INTERVAL_MS]
        got = [(f.settle_time_ms, f.rate) for f in funding if f.instrument == sym]
        assert got == want and got
        assert all(isinstance(r, Decimal) for _, r in got)
    assert {f.source for f in funding} == {"replay"}

    # each rate is followed, before any later funding, by the bar whose close reaches it
    idx_bar = {(b.instrument, b.open_time_ms): i for i, (s, b) in enumerate(order) if s == MD_BAR}
    for i, (s, f) in enumerate(order):
        if s != MD_FUNDING:
            continue
        first_open = max(START, f.settle_time_ms - INTERVAL_MS)
        first_open += -first_open % INTERVAL_MS
        nxt = idx_bar.get((f.instrument, first_open))
        if nxt is not None:
            assert nxt > i


async def test_a_resumed_replay_does_not_publish_funding_twice():
    bus = InMemoryBus()
    pub = BarPublisher(bus, "st")
    await pub.load()
    await _replay(bus, pub)
    first = len(await bus.entries(MD_FUNDING, 10**6))
    pub2 = BarPublisher(bus, "st")             # a restarted ingest
    await pub2.load()
    await ReplaySource(pub2, history_bars(SYMS, START, END),
                       funding=history_funding(SYMS, START, END)).run()
    assert len(await bus.entries(MD_FUNDING, 10**6)) == first > 0


async def test_event_ids_derive_from_instrument_and_settle_time():
    bus_a, bus_b = InMemoryBus(), InMemoryBus()
    for bus in (bus_a, bus_b):
        pub = BarPublisher(bus, "st")
        await pub.load()
        await pub.publish_funding(history_funding(SYMS, START, END))
    ids_a = [f["event_id"] for _, f in await bus_a.entries(MD_FUNDING, 10**6)]
    ids_b = [f["event_id"] for _, f in await bus_b.entries(MD_FUNDING, 10**6)]
    assert ids_a == ids_b and len(set(ids_a)) == len(ids_a)
