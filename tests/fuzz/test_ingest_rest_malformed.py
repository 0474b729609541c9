"""Ingest's REST kline client (httpx over real HTTP) against a venue that answers garbage.
Every malformed answer is a :class:`VenueError` (transient: the backfill retries later) whose
message says what was wrong; malformed rows inside a good answer are dropped one by one with a
reason (counted), and the good rows around them still come through."""

from __future__ import annotations

import json

import pytest
from tm_ingest.domain.bars import INTERVAL_MS
from tm_ingest.sources.rest import BybitRestClient, VenueError

T0 = 1_672_531_200_000
KLINE = "/v5/market/kline"
HTML = "<html><head><title>503 Service Unavailable</title></head><body>cloudflare</body></html>"


def row(i: int) -> list[str]:
    return [str(T0 + i * INTERVAL_MS), "100", "102", "99", "101", "5", "500"]


def ok(result) -> str:
    return json.dumps({"retCode": 0, "retMsg": "OK", "result": result})


CASES = [
    ("html page, 200", 200, HTML, "text/html", "body is not JSON (text/html"),
    ("html page, 503", 503, HTML, "text/html", "HTTP 503"),
    ("truncated json", 200, '{"retCode":0,"result":{"list":[["1672531200000","1', "application/json",
     "body is not JSON"),
    ("empty body", 200, "", "application/json", "body is not JSON"),
    ("json array", 200, "[[1, 2]]", "application/json", "body is a JSON array, not an object"),
    ("json number", 200, "42", "application/json", "body is a JSON number"),
    ("no retCode", 200, json.dumps({"retMsg": "OK", "result": {"list": []}}), "application/json",
     "no retCode"),
    ("retCode as text", 200, json.dumps({"retCode": "0", "result": {"list": []}}),
     "application/json", "retCode is not an integer"),
    ("venue error", 200, json.dumps({"retCode": 10006, "retMsg": "Too many visits!"}),
     "application/json", "retCode 10006: Too many visits!"),
    ("error without retMsg", 200, json.dumps({"retCode": 10001}), "application/json",
     "retCode 10001"),
    ("no result", 200, json.dumps({"retCode": 0, "retMsg": "OK"}), "application/json",
     "result is missing"),
    ("result is a list", 200, ok([row(0)]), "application/json", "result is a JSON array"),
    ("result is a string", 200, ok("none"), "application/json", "result is a JSON string"),
    ("list missing", 200, ok({"symbol": "BTCUSDT"}), "application/json", "result.list missing"),
    ("list is an object", 200, ok({"list": {"0": row(0)}}), "application/json",
     "result.list is a JSON object"),
    ("absurd nesting", 200, "[" * 100_000 + "]" * 100_000, "application/json",
     "body is not JSON"),
    ("binary garbage", 200, bytes(range(256)) * 4, "application/octet-stream",
     "body is not JSON"),
]


@pytest.mark.parametrize("name,status,body,ctype,needle", CASES, ids=[c[0] for c in CASES])
async def test_malformed_answers_are_clear_errors(bad_venue, name, status, body, ctype, needle):
    bad_venue.set(KLINE, body, status=status, content_type=ctype)
    client = BybitRestClient(bad_venue.url, timeout_s=10)
    try:
        with pytest.raises(VenueError) as info:
            await client.fetch("BTCUSDT", T0, T0 + 3 * INTERVAL_MS, now_ms=T0 + 100 * INTERVAL_MS)
    finally:
        await client.close()
    assert needle in str(info.value), str(info.value)
    assert str(info.value).startswith("kline BTCUSDT: ")


async def test_connection_closed_mid_body(bad_venue):
    bad_venue.set(KLINE, ok({"list": [row(0)]})[:30], short_by=400)
    client = BybitRestClient(bad_venue.url, timeout_s=10)
    try:
        with pytest.raises(VenueError, match="kline BTCUSDT: RemoteProtocolError"):
            await client.fetch("BTCUSDT", T0, T0 + INTERVAL_MS, now_ms=T0 + 10 * INTERVAL_MS)
    finally:
        await client.close()


async def test_malformed_rows_are_dropped_with_a_reason(bad_venue):
    rows = [row(3), 5, "x", None, {"start": T0}, [], ["1e999", "1", "1", "1", "1", "1"],
            [1e308 * 10, "1", "1", "1", "1", "1"],                       # Infinity (json.dumps)
            [str(T0 + 2 * INTERVAL_MS), "NaN", "1", "1", "1", "1"],
            [str(T0 + 2 * INTERVAL_MS), [1], {"a": 1}, True, None, "1"],
            [str(T0 + 2 * INTERVAL_MS), "100", "99", "101", "100", "5"],  # high < low
            row(1)]
    bad_venue.set(KLINE, ok({"list": rows}))
    dropped: list[str] = []
    client = BybitRestClient(bad_venue.url, timeout_s=10, on_bad_row=dropped.append)
    try:
        bars = await client.fetch("BTCUSDT", T0, T0 + 5 * INTERVAL_MS,
                                  now_ms=T0 + 100 * INTERVAL_MS)
    finally:
        await client.close()
    assert [b.open_time_ms for b in bars] == [T0 + INTERVAL_MS, T0 + 3 * INTERVAL_MS]
    assert len(dropped) == len(rows) - 2 and all("BTCUSDT" in r for r in dropped)
