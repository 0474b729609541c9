"""Every admin or mutating HTTP endpoint of every service refuses a caller without the right
credentials, with a clear message, changes nothing when it refuses, and works with them.

The inventory is read from the apps themselves (each service's real app factory), so an endpoint
added later without being listed here fails the first test instead of going unnoticed:

- risk: ``POST /breaker/trip``, ``POST /breaker/kill``, ``POST /breaker/reset``
  (``TM_ADMIN_TOKEN`` bearer; 403 when the service has no token configured);
- exchange sim: ``POST /sim/clock``, ``/sim/faults``, ``/sim/reset``, ``/sim/instruments``,
  ``/sim/transfer``, and the live-feed mode's
  ``/sim/bars``, ``/sim/funding`` (``TM_ADMIN_TOKEN`` bearer, checked on the headers before the
  body is read, when one is configured: without one the sim is an open development venue, as ``tm demo`` runs
  it; the Helm chart always sets one), and the Bybit private API (``/v5/order/*``,
  ``/v5/position/*``, ``/v5/execution/list``, ``/v5/account/*``), authenticated like Bybit by an
  HMAC signature with the API key's secret;
- ingest, regime, signal, sizer, executor, portfolio: read-only endpoints only (their commands,
  e.g. the sizer's join flush, are events on their own streams, never HTTP).
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from starlette.routing import Mount, Route, WebSocketRoute
from tm_common.bus.redis import RedisStreamsBus
from tm_common.testing.instruments import recorded_instruments_file

from .conftest import SECRETS, WRONG_TOKEN, leaks

ADMIN = SECRETS["admin_token"]
KEY, SECRET = SECRETS["bybit_api_key"], SECRETS["bybit_api_secret"]
READ_ONLY = {"GET", "HEAD"}
RISK_ADMIN = {("POST", "/breaker/trip"), ("POST", "/breaker/kill"), ("POST", "/breaker/reset")}
SIM_ADMIN = {("POST", "/sim/clock"), ("POST", "/sim/faults"), ("POST", "/sim/reset"),
             ("POST", "/sim/instruments"), ("POST", "/sim/transfer"),
             ("POST", "/sim/bars"), ("POST", "/sim/funding")}
SIM_SIGNED = {("POST", "/v5/order/create"), ("POST", "/v5/order/cancel"),
              ("GET", "/v5/order/realtime"), ("GET", "/v5/execution/list"),
              ("GET", "/v5/position/list"), ("POST", "/v5/position/set-leverage"),
              ("POST", "/v5/position/switch-mode"), ("POST", "/v5/position/trading-stop"),
              ("GET", "/v5/account/wallet-balance"),
              ("POST", "/v5/order/amend"), ("POST", "/v5/order/cancel-all"),
              ("GET", "/v5/order/history"), ("GET", "/v5/position/closed-pnl")}
# Refused requests: (label, Authorization header or None, token in the query string?)
REFUSALS = [("no token", None), ("wrong token", f"Bearer {WRONG_TOKEN}"),
            ("right token, wrong scheme", f"Basic {ADMIN}"), ("bearer without a token", "Bearer"),
            ("token with a suffix", f"Bearer {ADMIN}x"), ("token prefix", f"Bearer {ADMIN[:-1]}")]


# -- inventory -----------------------------------------------------------------------------------
def _apps(redis_url: str) -> dict:
    """Each service's app, built by its own factory (nothing is started: the bus is lazy)."""
    from pydantic import SecretStr
    from tm_common.service import create_app
    from tm_exchange_sim.app import create_app as sim_app
    from tm_exchange_sim.config import ExchangeSimSettings
    from tm_executor.app import build_runtime as executor
    from tm_executor.config import ExecutorSettings
    from tm_ingest.app import build_runtime as ingest
    from tm_ingest.config import IngestSettings
    from tm_portfolio.app import build_runtime as portfolio
    from tm_portfolio.config import PortfolioSettings
    from tm_regime.app import build_runtime as regime
    from tm_regime.config import RegimeSettings
    from tm_risk.app import build_app as risk_app
    from tm_risk.config import RiskSettings
    from tm_signal.app import build_runtime as signal
    from tm_signal.config import SignalSettings
    from tm_sizer.app import build_runtime as sizer
    from tm_sizer.config import SizerSettings

    common = {"redis_url": redis_url, "admin_token": SecretStr(ADMIN)}
    nodb = {**common, "db_enabled": False}
    return {
        "exchange_sim": sim_app(ExchangeSimSettings(**common)),
        "risk": risk_app(RiskSettings(**common, stale_check_interval_s=0)),
        "ingest": create_app(ingest(IngestSettings(**nodb, mode="off"))),
        "regime": create_app(regime(RegimeSettings(**nodb))),
        "signal": create_app(signal(SignalSettings(**nodb))),
        "sizer": create_app(sizer(SizerSettings(**nodb))),
        "executor": create_app(executor(ExecutorSettings(**common))),
        "portfolio": create_app(portfolio(PortfolioSettings(**nodb))),
    }


def _mutating(routes, prefix: str = "") -> set[tuple[str, str]]:
    """(method, path) of every route that is not GET/HEAD, WebSockets as ("WS", path); routers
    included with ``include_router`` and mounts are walked."""
    out = set()
    for r in routes:
        if hasattr(r, "original_router"):             # FastAPI's included router
            sub = getattr(getattr(r, "include_context", None), "prefix", "")
            out |= _mutating(r.original_router.routes, prefix + sub)
        elif isinstance(r, Mount):
            out |= _mutating(r.routes, prefix + r.path)
        elif isinstance(r, WebSocketRoute):
            out.add(("WS", prefix + r.path))
        elif isinstance(r, Route):
            out |= {(m, prefix + r.path) for m in r.methods or () if m not in READ_ONLY}
        else:
            raise AssertionError(f"route of unknown type {type(r).__name__}: cannot classify it")
    return out


def test_every_mutating_endpoint_is_known(secure_redis):
    from tm_exchange_sim.metrics import SimMetrics
    from tm_exchange_sim.routes_trade import trade_handlers

    apps = _apps(secure_redis.url())
    found = {name: _mutating(app.routes) for name, app in apps.items()}
    # The sim's private (signed) routes are exactly the trade handlers behind the gateway.
    signed = set(trade_handlers(None, SimMetrics("x", "0")))
    assert signed == SIM_SIGNED
    expected = {name: set() for name in apps}
    expected["risk"] = RISK_ADMIN
    expected["exchange_sim"] = SIM_ADMIN | {r for r in SIM_SIGNED if r[0] == "POST"} | \
        {("WS", "/v5/public/linear"), ("WS", "/v5/private")}
    assert found == expected, "an endpoint that changes state is not covered by the proofs below"


# -- risk ----------------------------------------------------------------------------------------
def _streams(url: str, namespace: str, *names: str) -> dict[str, list]:
    async def go():
        bus = RedisStreamsBus(url, prefix=namespace)
        try:
            return {n: await bus.entries(n) for n in names}
        finally:
            await bus.close()
    return asyncio.run(go())


def _risk_env(redis_url: str, namespace: str, **extra: str) -> dict[str, str]:
    # its lot filters: a recorded instruments-info answer (no venue runs here)
    return {"TM_REDIS_URL": redis_url, "TM_NAMESPACE": namespace, "TM_CONSUMER_NAME": "risk-0",
            "TM_RISK_INSTRUMENTS_FILE": str(recorded_instruments_file()),
            "TM_RISK_STALE_CHECK_INTERVAL_S": "0", "TM_READ_BLOCK_MS": "100",
            "TM_LAG_POLL_INTERVAL_S": "0.5", "TM_RISK_ADMIN_WAIT_S": "5", **extra}


def test_risk_breaker_endpoints_need_the_admin_token(secure_redis, service):
    url = secure_redis.url()                      # the ACL user: redis://tmsvc:***@host/0
    risk = service("risk", "tm_risk", _risk_env(url, "tmsec:admin:", TM_ADMIN_TOKEN=ADMIN))
    bare = service("risk-no-token", "tm_risk", _risk_env(url, "tmsec:admin-bare:"))
    risk.wait_http("/readyz", timeout_s=90)
    bare.wait_http("/readyz", timeout_s=90)

    for _method, path in sorted(RISK_ADMIN):
        for label, header in REFUSALS:
            r = risk.post(path, header=header, json={"reason": "attack"})
            assert r.status_code == 401, (path, label, r.text)
            body = r.json()
            assert body["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
            assert body["detail"] in ("missing bearer token", "invalid bearer token"), body
        r = risk.post(f"{path}?token={ADMIN}", json={"reason": "attack"})
        assert r.status_code == 401, "a token is accepted only in the Authorization header"
        r = risk.post(path, header=f"Bearer {WRONG_TOKEN}", content=b"{not json")
        assert r.status_code == 401, "authentication comes before the body is read"
        # A service without a configured token refuses every caller, the right token included.
        r = bare.post(path, token=ADMIN)
        assert r.status_code == 403 and r.json() == {"error": "forbidden",
                                                     "detail": "admin token not configured"}

    # Refusals changed nothing: no command was queued, no transition happened.
    s = _streams(url, "tmsec:admin:", "risk.command", "risk.breaker")
    assert s == {"risk.command": [], "risk.breaker": []}
    assert risk.get("/status").json()["extra"]["breaker"]["state"] == "CLOSED"

    r = risk.post("/breaker/trip", token=ADMIN, json={"reason": "drill"})
    assert r.status_code == 200 and r.json()["applied"] is True and r.json()["state"] == "OPEN", r.text
    r = risk.post("/breaker/kill", token=ADMIN, json={"reason": "drill"})
    assert r.status_code == 200 and r.json()["applied"] is True, r.text
    r = risk.post("/breaker/reset", token=ADMIN, json={"reason": "drill over"})
    assert r.status_code == 200 and r.json()["state"] == "CLOSED", r.text
    s = _streams(url, "tmsec:admin:", "risk.command", "risk.breaker")
    assert len(s["risk.command"]) == 3 and len(s["risk.breaker"]) == 3
    assert _streams(url, "tmsec:admin-bare:", "risk.command") == {"risk.command": []}

    risk.stop()
    bare.stop()
    text = risk.logs() + bare.logs()
    assert "risk.admin_denied" in text and "risk.admin_command" in text
    assert not leaks(text, {"admin": ADMIN, "wrong": WRONG_TOKEN}), leaks(text)


# -- exchange sim --------------------------------------------------------------------------------
SIM_BODIES = {"/sim/clock": {"steps": 1}, "/sim/faults": {"rate_limit_prob": 0.5},
              "/sim/reset": {"initial_balance": "5"},
              # Bybit's own (recorded) BTCUSDT answer (this sim lists only BTCUSDT)
              "/sim/instruments": [i for i in json.loads(recorded_instruments_file().read_text())
                                   ["result"]["list"] if i["symbol"] == "BTCUSDT"],
              "/sim/transfer": {"amount": "5"}}         # after the reset to 5: a wallet of 10
# The live-feed mode's pushes: refused without the token in any mode (their use with it is
# tests/unit/exchange_sim/test_live_feed.py; this sim runs in history mode, which refuses them).
SIM_LIVE_BODIES = {
    "/sim/bars": {"bars": [{"symbol": "BTCUSDT", "open_time_ms": 1_735_689_600_000, "open": "1",
                            "high": "1", "low": "1", "close": "1", "volume": "1"}]},
    "/sim/funding": {"rates": [{"symbol": "BTCUSDT", "settle_time_ms": 1_735_689_600_000,
                                "rate": "0.0001"}]},
}


def _sim_view(sim) -> str:
    return json.dumps([sim.get(p).json() for p in ("/sim/clock", "/sim/faults", "/sim/account",
                                                    "/sim/orders")], sort_keys=True)


def _signed_headers(key: str, secret: str, payload: str, *, sign: str | None = None) -> dict:
    from tm_exchange_sim.signing import rest_signature

    ts = str(int(time.time() * 1000))
    return {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000",
            "X-BAPI-SIGN-TYPE": "2",
            "X-BAPI-SIGN": sign if sign is not None else rest_signature(secret, ts, key, "5000",
                                                                        payload)}


def _ws_auth(port: int, args: list) -> tuple[dict, bool]:
    """Subscribe to a private topic (refused before auth), then authenticate with ``args``:
    (the auth reply, whether the server closed the connection after it)."""
    import websockets.sync.client as ws_client
    from websockets.exceptions import ConnectionClosed

    with ws_client.connect(f"ws://127.0.0.1:{port}/v5/private", open_timeout=10) as ws:
        ws.send(json.dumps({"op": "subscribe", "args": ["execution"], "req_id": "s0"}))
        assert json.loads(ws.recv(timeout=10))["success"] is False, "a private topic before auth"
        ws.send(json.dumps({"op": "auth", "args": args, "req_id": "a1"}))
        reply = json.loads(ws.recv(timeout=10))
        try:
            ws.recv(timeout=1)
            return reply, False
        except (ConnectionClosed, TimeoutError) as e:
            return reply, isinstance(e, ConnectionClosed)


def test_sim_controls_and_private_api_need_credentials(service):
    sim = service("sim", "tm_exchange_sim", {
        "TM_ADMIN_TOKEN": ADMIN, "TM_SIM_API_KEY": KEY, "TM_SIM_API_SECRET": SECRET,
        "TM_SIM_SYMBOLS": '["BTCUSDT"]', "TM_SIM_RATE_LIMIT_PER_S": "1000"})
    sim.wait_http("/readyz", timeout_s=90)
    before = _sim_view(sim)

    for path, body in {**SIM_BODIES, **SIM_LIVE_BODIES}.items():
        for label, header in REFUSALS:
            r = sim.post(path, header=header, json=body)
            assert r.status_code == 401, (path, label, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["detail"] in ("admin token required: missing bearer token",
                                          "admin token required: invalid bearer token"), r.text
        # Authentication comes before validation: an unauthenticated caller learns no schema,
        # and before the body is read: malformed JSON is a 401 too, not a 422.
        r = sim.post(path, json={"not_a_field": 1})
        assert r.status_code == 401, r.text
        r = sim.post(path, header=f"Bearer {WRONG_TOKEN}", content=b"{not json",
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 401, r.text

    # The Bybit private API: unsigned, unknown key, bad signature, stale timestamp → refused.
    order = json.dumps({"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                        "orderType": "Market", "qty": "0.001"})
    client = httpx.Client(timeout=10)
    for method, path in sorted(SIM_SIGNED):
        payload = order if method == "POST" else "category=linear&accountType=UNIFIED"
        target = sim.base + path + ("" if method == "POST" else f"?{payload}")
        content = payload if method == "POST" else None
        attempts = {
            10003: [{}, _signed_headers("SECunknown-key", SECRET, payload)],
            10004: [_signed_headers(KEY, "SECwrong-secret", payload),
                    _signed_headers(KEY, SECRET, payload, sign="0" * 64)],
        }
        for code, headers_list in attempts.items():
            for headers in headers_list:
                r = client.request(method, target, content=content,
                                   headers={"Content-Type": "application/json", **headers})
                assert r.status_code == 200 and r.json()["retCode"] == code, (path, r.text)
                assert r.json()["retMsg"] and KEY not in r.text and SECRET not in r.text
    client.close()
    # The private WebSocket: a bad signature or an unknown key is refused and disconnected.
    from tm_exchange_sim.signing import ws_signature

    expires = int(time.time() * 1000) + 30_000
    reply, closed = _ws_auth(sim.port, [KEY, expires, "0" * 64])
    assert reply["success"] is False and reply["ret_msg"] == "Request not authorized" and closed
    reply, closed = _ws_auth(sim.port, ["SECunknown-key", expires, ws_signature(SECRET, expires)])
    assert reply["success"] is False and closed
    assert _ws_auth(sim.port, [KEY, expires, ws_signature(SECRET, expires)])[0]["success"] is True
    assert _sim_view(sim) == before, "a refused request changed the venue"

    # With credentials: every control works, and a pybit-signed order is accepted.
    for path, body in SIM_BODIES.items():
        r = sim.post(path, token=ADMIN, json=body)
        assert r.status_code == 200, (path, r.text)
    assert float(sim.get("/sim/account").json()["totalWalletBalance"]) == 10.0   # reset, transfer
    assert sim.post("/sim/faults", token=ADMIN, json={"rate_limit_prob": 0.0}).status_code == 200
    assert sim.post("/sim/reset", token=ADMIN, json={"initial_balance": "100000"}).status_code == 200
    from pybit.unified_trading import HTTP

    http = HTTP(api_key=KEY, api_secret=SECRET, max_retries=1)
    http.endpoint = sim.base
    assert http.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                            orderType="Market", qty="0.001")["retCode"] == 0
    assert sim.get("/sim/orders").json()["count"] == 1, "only the signed order exists"

    sim.stop()
    text = sim.logs()
    assert not leaks(text, {"admin": ADMIN, "wrong": WRONG_TOKEN, "key": KEY, "secret": SECRET}), \
        leaks(text)


def test_deployments_take_the_admin_token_from_a_secret():
    """The Helm values never run an admin endpoint open: risk and the sim (and ingest, which steps
    the sim) read their own admin token from a Kubernetes Secret (``tm_common.admin_tokens``);
    no values file puts a secret-looking setting in its plain ConfigMap."""
    from pathlib import Path

    import yaml
    from tm_common.logging import SECRET_KEY_RE

    values = Path(__file__).resolve().parents[2] / "helm" / "values"
    docs = {p.stem: yaml.safe_load(p.read_text()) or {} for p in sorted(values.glob("*.yaml"))}
    own = {"risk": "TM_RISK_ADMIN_TOKEN", "exchange-sim": "TM_SIM_ADMIN_TOKEN",
           "ingest": "TM_INGEST_SIM_ADMIN_TOKEN"}
    for name, var in own.items():
        ref = (docs[name].get("secretEnv") or {}).get(var)
        assert isinstance(ref, dict) and ref.get("secret") and ref.get("key"), (name, ref)
    for name, doc in docs.items():
        plain = [k for k in (doc.get("config") or {}) if SECRET_KEY_RE.search(k)]
        assert not plain, f"{name}: secret-looking settings in the ConfigMap: {plain}"
