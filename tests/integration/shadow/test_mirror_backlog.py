"""The shadow book's mirror merges production's market streams in publication order however
far behind it reads: a stream cut at the read's count must not let another stream's newer
entries be applied first (a backlog would otherwise change what the book trades)."""

from __future__ import annotations

from decimal import Decimal

import redis.asyncio as aioredis
from tm_app.shadow.mirror import MarketMirror
from tm_common.events import BarClosed, Envelope, FundingRateUpdated

H4 = 4 * 3600_000
SYMS = ("BTCUSDT", "ETHUSDT")


def _bar(sym: str, t: int) -> dict:
    body = BarClosed(instrument=sym, open_time_ms=t, close_time_ms=t + H4, open=Decimal(1),
                     high=Decimal(2), low=Decimal(1), close=Decimal(1), volume=Decimal(1))
    return Envelope.root(body, key=f"{sym}:{t}", correlation_id="c", ts_event_ns=0,
                         ts_init_ns=0).to_fields()


def _rate(sym: str, t: int) -> dict:
    body = FundingRateUpdated(instrument=sym, settle_time_ms=t, rate=Decimal("0.0001"))
    return Envelope.root(body, key=f"f{sym}:{t}", correlation_id="c", ts_event_ns=0,
                         ts_init_ns=0).to_fields()


async def test_a_backlog_read_in_pieces_is_merged_in_publication_order(redis_url, namespace):
    r = aioredis.Redis.from_url(redis_url)
    keys = {"md.bar": f"{namespace}md.bar", "md.funding": f"{namespace}md.funding"}
    published: list[tuple[str, str]] = []            # (stream, what) in publication order
    try:
        for i in range(12):                          # each bar time: a rate, then both bars,
            t = i * H4                               # in one millisecond (as a replay can)
            ms = 1_000 + 10 * i
            await r.xadd(keys["md.funding"], _rate("BTCUSDT", t), id=f"{ms}-0")
            published.append(("md.funding", f"BTCUSDT:{t}"))
            for j, sym in enumerate(SYMS):
                await r.xadd(keys["md.bar"], _bar(sym, t), id=f"{ms}-{j}")
                published.append(("md.bar", f"{sym}:{t}"))
        # reads of 5 entries a stream: md.bar is cut every time, md.funding (12) too at first
        m = MarketMirror(r, keys, SYMS, read_count=5)
        seen: list[tuple[str, str]] = []
        batches = []
        for _ in range(40):
            for b in await m.read(block_ms=10):
                batches.append(b)
                for stream, env in b.events:
                    body = env.body
                    t = body.open_time_ms if isinstance(body, BarClosed) else body.settle_time_ms
                    seen.append((stream, f"{body.instrument}:{t}"))
        assert seen == published, (seen[:8], published[:8])
        assert [b.bar_time_ms for b in batches] == [i * H4 for i in range(12)]
        assert all(len(b.funding) == 1 and len(b.bars) == 2 for b in batches)
        assert m.counts.partial == 0
    finally:
        await r.delete(*keys.values())
        await r.aclose()
