"""The simulator's front door on its app (ASGI, no server): the order of the checks and the edge
cases the process tests (tests/integration/exchange_sim/test_http_hygiene.py) do not reach."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from tm_exchange_sim.app import create_app
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.http_guard import HttpGuard, bearer_refusal, is_json

TOKEN = "unit-admin-token-4c0e9b7a"


@pytest.fixture(scope="module")
def client():
    settings = ExchangeSimSettings.from_values(admin_token=SecretStr(TOKEN),
                                               sim_max_body_bytes=4096)
    with TestClient(create_app(settings)) as c:
        yield c


def auth(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", **extra}


def test_bearer_refusal_and_media_type():
    assert bearer_refusal(f"Bearer {TOKEN}", TOKEN) is None
    assert bearer_refusal(f"bearer  {TOKEN} ", TOKEN) is None
    assert bearer_refusal(None, TOKEN) == "admin token required: missing bearer token"
    assert bearer_refusal(f"Basic {TOKEN}", TOKEN) == "admin token required: missing bearer token"
    assert bearer_refusal(f"Bearer {TOKEN}x", TOKEN) == "admin token required: invalid bearer token"
    assert is_json("application/json") and is_json("Application/JSON; charset=utf-8")
    assert not is_json(None) and not is_json("text/json") and not is_json("application/jsonx")


def test_the_cap_must_be_positive():
    with pytest.raises(ValueError, match="max_body_bytes must be >= 1"):
        HttpGuard(create_app(), admin_token=None, max_body_bytes=0)


def test_order_of_checks_auth_then_size_then_media_type(client):
    big = b"x" * 5000
    # no token: 401 whatever the size and the media type
    assert client.post("/sim/clock", content=big).status_code == 401
    # token, too big: 413 whatever the media type
    r = client.post("/sim/clock", content=big, headers=auth())
    assert r.status_code == 413 and r.json() == {"detail": "request body over 4096 bytes"}
    # token, small, not JSON: 415
    assert client.post("/sim/clock", content=b"steps=1", headers=auth()).status_code == 415
    # token, small, JSON, invalid: the app's 422
    r = client.post("/sim/clock", content=b"{", headers=auth(**{"Content-Type":
                                                                  "application/json"}))
    assert r.status_code == 422


def test_a_chunked_body_is_cut_at_the_cap(client):
    def chunks(n: int):
        for _ in range(n):
            yield b" " * 1024

    r = client.post("/sim/clock", content=chunks(10),
                    headers=auth(**{"Content-Type": "application/json"}))
    assert r.status_code == 413, r.text
    r = client.post("/sim/clock", content=(c for c in [b'{"steps":', b" 1}"]),
                    headers=auth(**{"Content-Type": "application/json"}))
    assert r.status_code == 200, r.text


def test_a_malformed_content_length_is_a_400(client):
    r = client.post("/sim/clock", content=b"{}", headers=auth(**{
        "Content-Type": "application/json", "Content-Length": "2x"}))
    assert r.status_code == 400 and "Content-Length" in r.json()["detail"]


def test_an_empty_control_post_needs_no_media_type(client):
    """``POST /sim/reset`` with no body at all (nothing to parse) is served."""
    assert client.post("/sim/reset", headers=auth()).status_code == 200


def test_public_routes_are_not_gated_but_capped(client):
    assert client.get("/v5/market/instruments-info?category=linear").status_code == 200
    assert client.get("/sim/clock").status_code == 200
    r = client.request("GET", "/v5/market/instruments-info", content=b"x" * 5000)
    assert r.status_code == 413
