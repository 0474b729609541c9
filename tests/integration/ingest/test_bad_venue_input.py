"""Malformed WebSocket frames, REST pages with gaps or out-of-order rows and HTTP errors from a
venue: a clear log line and a counter, never a crash. The venue here is a real local server
(websockets / FastAPI over ASGI) that answers with crafted payloads."""

import asyncio
import json

import httpx
import pytest
import websockets
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from tm_common.bus import InMemoryBus
from tm_common.bus.streams import MD_BAR
from tm_common.testing.redis import free_port
from tm_ingest.domain.bars import INTERVAL_MS
from tm_ingest.publisher import BarPublisher
from tm_ingest.sources.live import LiveSource
from tm_ingest.sources.rest import BybitRestClient, VenueError

T0 = 1_672_531_200_000


def kl(i, confirm=True, close="101"):
    return {"start": T0 + i * INTERVAL_MS, "end": T0 + (i + 1) * INTERVAL_MS - 1, "interval": "240",
            "open": "100", "close": close, "high": "102", "low": "99", "volume": "5",
            "turnover": "500", "confirm": confirm, "timestamp": 1}


def rest_row(i):
    return [str(T0 + i * INTERVAL_MS), "100", "102", "99", "101", "5", "500"]


def venue(pages):
    """A kline endpoint answering from ``pages`` (callable(params) → response)."""
    app = FastAPI()

    @app.get("/v5/market/kline")
    async def kline(symbol: str, start: int, end: int, limit: int = 1000, category: str = "",
                    interval: str = ""):
        return pages(start, end)
    return app


def client(app, counter):
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://venue")
    return BybitRestClient("http://venue", client=http, on_bad_row=lambda r: counter.append(r))


async def test_rest_out_of_order_repeated_and_bad_rows_tolerated():
    bad = []
    rows = [rest_row(5), rest_row(2), ["junk"], rest_row(3), rest_row(2), rest_row(4),
            [str(T0 + 7), "1", "1", "1", "1", "1"]]
    app = venue(lambda s, e: {"retCode": 0, "retMsg": "OK", "result": {"list": rows}})
    c = client(app, bad)
    bars = await c.fetch("BTCUSDT", T0, T0 + 10 * INTERVAL_MS, now_ms=T0 + 100 * INTERVAL_MS)
    assert [b.open_time_ms for b in bars] == [T0 + i * INTERVAL_MS for i in (2, 3, 4, 5)]
    assert len(bad) == 2 and any("not on the" in r for r in bad)


async def test_rest_never_returns_the_open_bar():
    app = venue(lambda s, e: {"retCode": 0, "retMsg": "OK",
                              "result": {"list": [rest_row(1), rest_row(0)]}})
    bars = await client(app, []).fetch("BTCUSDT", T0, T0 + 5 * INTERVAL_MS,
                                       now_ms=T0 + INTERVAL_MS + 5)
    assert [b.open_time_ms for b in bars] == [T0]


@pytest.mark.parametrize("answer, needle", [
    (lambda: JSONResponse({"retCode": 10006, "retMsg": "Too many visits!"}), "10006"),
    (lambda: PlainTextResponse("upstream down", status_code=502), "HTTP 502"),
    (lambda: PlainTextResponse("<html>", status_code=200), "not JSON"),
    (lambda: JSONResponse({"retCode": 0, "result": {}}), "result.list missing"),
])
async def test_rest_errors_are_clear(answer, needle):
    app = venue(lambda s, e: answer())
    with pytest.raises(VenueError, match=needle):
        await client(app, []).fetch("BTCUSDT", T0, T0 + INTERVAL_MS, now_ms=T0 + 10 * INTERVAL_MS)


async def test_malformed_ws_frames_counted_good_bars_published_and_gap_backfilled():
    frames = [
        "not json at all",
        json.dumps([1, 2, 3]),
        json.dumps({"op": "subscribe", "success": True}),
        json.dumps({"topic": "kline.240.BTCUSDT", "data": {"oops": 1}}),
        json.dumps({"topic": "kline.240.DOGEUSDT", "data": [kl(1)]}),
        json.dumps({"topic": "kline.240.BTCUSDT", "data": [kl(1, confirm=False)]}),
        json.dumps({"topic": "kline.240.BTCUSDT", "data": [{**kl(1), "close": "abc"}]}),
        json.dumps({"topic": "kline.240.BTCUSDT", "data": [kl(1)]}),
        json.dumps({"topic": "kline.240.BTCUSDT", "data": [kl(1)]}),      # repeat
        json.dumps({"topic": "kline.240.BTCUSDT", "data": [kl(4)]}),      # hole: 2, 3
        json.dumps({"topic": "kline.240.BTCUSDT", "data": [kl(3)]}),      # late
    ]

    async def serve(ws):
        await ws.recv()                                  # the subscribe request
        for f in frames:
            await ws.send(f)
        await asyncio.sleep(5)

    port = free_port()
    server = await websockets.serve(serve, "127.0.0.1", port)
    rows = {0: rest_row(0), 2: rest_row(2), 3: rest_row(3)}
    app = venue(lambda s, e: {"retCode": 0, "retMsg": "OK", "result": {"list": [
        r for i, r in sorted(rows.items(), reverse=True) if s <= T0 + i * INTERVAL_MS <= e]}})
    bus = InMemoryBus()
    pub = BarPublisher(bus, "st")
    live = LiveSource(f"ws://127.0.0.1:{port}", client(app, []), pub, ["BTCUSDT"],
                      backfill_start_ms=T0, clock_ms=lambda: T0 + INTERVAL_MS + 1)
    task = asyncio.create_task(live.run())
    for _ in range(100):
        if pub.stats.published >= 5:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    live.stop()
    await asyncio.wait_for(task, 5)
    server.close()
    times = [json.loads(f["body"])["open_time_ms"] for _, f in await bus.entries(MD_BAR)]
    assert times == [T0 + i * INTERVAL_MS for i in range(5)]
    assert live.counters.bad_frames == 5
    assert pub.stats.duplicates == 1 and pub.stats.late == 1
