"""The executor's venue client (pybit over real HTTP) against a venue that answers garbage:
HTML error pages, truncated or non-object JSON, missing or mistyped fields, absurd nesting,
binary bodies, a connection closed mid-body. Each must become a classified, scrubbed
:class:`VenueError` (transient and ambiguous: a garbled answer to an order may hide a placed
order) with a message that says what was wrong, never a KeyError/AttributeError from pybit."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr
from tm_executor.config import ExecutorSettings
from tm_executor.domain.errors import ErrorClass, VenueError
from tm_executor.venue import VenueClient

KEY, SECRET = "fuzz-key", "fuzz-secret-never-in-messages"
POSITIONS = "/v5/position/list"
OK = {"retCode": 0, "retMsg": "OK", "retExtInfo": {}, "time": 1}
HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def answer(result) -> str:
    return json.dumps({**OK, "result": result})


def client(url: str) -> VenueClient:
    s = ExecutorSettings(bybit_rest_url=url, bybit_api_key=SecretStr(KEY),
                         bybit_api_secret=SecretStr(SECRET), venue_timeout_s=5.0,
                         symbols=("BTCUSDT",))
    return VenueClient(s)


# (name, status, body, content type, needle in the error message)
ENVELOPES = [
    ("html page, 200", 200, HTML, "text/html", "body is not JSON (text/html"),
    ("html page, 502", 502, HTML, "text/html", "http_502"),
    ("truncated json", 200, '{"retCode":0,"retMsg":"OK","result":{"list":[{"symbol":',
     "application/json", "body is not JSON"),
    ("empty body", 200, "", "application/json", "body is not JSON"),
    ("json array", 200, "[1, 2, 3]", "application/json", "body is a JSON array"),
    ("json string", 200, '"OK"', "application/json", "body is a JSON string"),
    ("json null", 200, "null", "application/json", "body is a JSON null"),
    ("no retCode", 200, json.dumps({"retMsg": "OK", "result": {}}), "application/json",
     "no retCode"),
    ("retCode as text", 200, json.dumps({"retCode": "0", "retMsg": "OK", "result": {}}),
     "application/json", "retCode is not an integer"),
    ("retCode as bool", 200, json.dumps({"retCode": True, "retMsg": "x"}), "application/json",
     "retCode is not an integer"),
    ("error without retMsg", 200, json.dumps({"retCode": 10001}), "application/json",
     "without a retMsg"),
    ("no result", 200, json.dumps(OK), "application/json", "without a result object"),
    ("result is a list", 200, answer([1]), "application/json", "without a result object"),
    ("list is a string", 200, answer({"list": "abc"}), "application/json",
     "result.list is a str"),
    ("list is missing", 200, answer({"category": "linear"}), "application/json",
     "result.list is missing"),
    ("list items not objects", 200, answer({"list": [1, "x", None]}), "application/json",
     "not objects"),
    ("record without symbol", 200, answer({"list": [{"size": "1", "side": "Buy"}]}),
     "application/json", "malformed venue record: missing symbol"),
    ("record with a text size", 200,
     answer({"list": [{"symbol": "BTCUSDT", "size": "lots", "side": "Buy"}]}),
     "application/json", "size is not a number"),
    ("cursor is an object", 200, answer({"list": [], "nextPageCursor": {"page": 2}}),
     "application/json", "nextPageCursor is a dict"),
    ("absurd nesting", 200, "[" * 100_000 + "]" * 100_000, "application/json",
     "body is not JSON"),
    ("invalid utf-8", 200, b'{"retCode":0,"retMsg":"\xff\xfe"}', "application/json",
     "body is not JSON"),
    ("binary garbage", 200, bytes(range(256)) * 4, "application/octet-stream",
     "body is not JSON"),
]


@pytest.mark.parametrize("name,status,body,ctype,needle", ENVELOPES, ids=[e[0] for e in ENVELOPES])
async def test_malformed_answers_are_classified_errors(bad_venue, name, status, body, ctype,
                                                       needle):
    bad_venue.set(POSITIONS, body, status=status, content_type=ctype)
    venue = client(bad_venue.url)
    with pytest.raises(VenueError) as info:
        await venue.positions()
    err = info.value
    assert err.kind is ErrorClass.TRANSIENT and err.ambiguous, err
    assert needle in str(err), str(err)
    assert KEY not in str(err) and SECRET not in str(err)
    assert bad_venue.requests, "the request reached the venue"


async def test_connection_closed_mid_body_is_transient(bad_venue):
    bad_venue.set(POSITIONS, '{"retCode":0,"retMsg":"OK","result":{"li', short_by=500)
    with pytest.raises(VenueError) as info:
        await client(bad_venue.url).positions()
    assert info.value.kind is ErrorClass.TRANSIENT and info.value.ambiguous


async def test_html_answer_to_an_order_is_ambiguous(bad_venue):
    """The order may have been placed behind the proxy page: the executor must look it up
    (ambiguous) before any retry, not place it again."""
    bad_venue.set("/v5/order/create", HTML, content_type="text/html")
    with pytest.raises(VenueError) as info:
        await client(bad_venue.url).place_order({
            "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
            "qty": "0.001", "orderLinkId": "tm-fuzz-1"})
    assert info.value.kind is ErrorClass.TRANSIENT and info.value.ambiguous
    assert "malformed answer" in str(info.value)


@pytest.mark.parametrize("order_id", [{"id": 1}, ["1"], True, ""])
async def test_order_answer_with_a_mistyped_order_id(bad_venue, order_id):
    bad_venue.set("/v5/order/create", answer({"orderId": order_id, "orderLinkId": "x"}))
    with pytest.raises(VenueError, match="answer without orderId") as info:
        await client(bad_venue.url).place_order({"category": "linear", "symbol": "BTCUSDT"})
    assert info.value.ambiguous


@pytest.mark.parametrize("call,path,result,needle", [
    ("wallet", "/v5/account/wallet-balance", {"list": {"accountType": "UNIFIED"}},
     "result.list is a dict"),
    ("instrument", "/v5/market/instruments-info",
     {"list": [{"symbol": "BTCUSDT", "lotSizeFilter": "0.001", "priceFilter": {}}]},
     "malformed venue record"),
    ("instrument", "/v5/market/instruments-info",
     {"list": [{"symbol": "BTCUSDT", "lotSizeFilter": {"qtyStep": [1]}, "priceFilter": {}}]},
     "malformed venue record"),
    ("order", "/v5/order/realtime", {"list": [{"orderId": "1", "orderStatus": "New"}]},
     "malformed venue record: missing symbol"),
    ("executions", "/v5/execution/list",
     {"list": [{"execId": "e", "symbol": "BTCUSDT", "side": "Buy", "execQty": "1",
                "execPrice": "1", "execTime": "yesterday"}]}, "execTime is not an integer"),
])
async def test_malformed_records_per_endpoint(bad_venue, call, path, result, needle):
    bad_venue.set(path, answer(result))
    venue = client(bad_venue.url)
    coro = {"wallet": lambda: venue.wallet(),
            "instrument": lambda: venue.instrument("BTCUSDT"),
            "order": lambda: venue.get_order("BTCUSDT", link_id="tm-x"),
            "executions": lambda: venue.get_executions("BTCUSDT", "o-1")}[call]
    with pytest.raises(VenueError, match=needle) as info:
        await coro()
    assert info.value.kind is ErrorClass.TRANSIENT


async def test_well_formed_answers_still_parse(bad_venue):
    bad_venue.set(POSITIONS, answer({"list": [
        {"symbol": "BTCUSDT", "size": "0.002", "side": "Buy", "avgPrice": "94000.5"}],
        "nextPageCursor": ""}))
    bad_venue.set("/v5/order/create", answer({"orderId": "o-123", "orderLinkId": "x"}))
    venue = client(bad_venue.url)
    [pos] = await venue.positions()
    assert pos.symbol == "BTCUSDT" and str(pos.qty) == "0.002"
    assert await venue.place_order({"category": "linear", "symbol": "BTCUSDT"}) == "o-123"
    assert venue.errors == 0
