"""Signature checks against pybit's own signer; seeded faults; rate-limit windows."""

from __future__ import annotations

import json

import pytest
from pybit._http_manager import generate_signature
from tm_exchange_sim.faults import FaultConfig, FaultInjector
from tm_exchange_sim.matching import VenueError
from tm_exchange_sim.ratelimit import BYBIT_LIMITS_PER_S, IpGuard, RateLimiter
from tm_exchange_sim.signing import verify_rest, verify_ws_auth, ws_signature

KEYS = {"k1": "s3cret"}
NOW = 1_700_000_000_000


def headers(payload: str, *, key="k1", secret="s3cret", ts=NOW, recv="5000") -> dict:
    sign = generate_signature(False, secret, f"{ts}{key}{recv}{payload}")
    return {"x-bapi-api-key": key, "x-bapi-sign": sign, "x-bapi-timestamp": str(ts),
            "x-bapi-recv-window": recv, "x-bapi-sign-type": "2"}


def test_pybit_signatures_verify_for_post_and_get():
    body = json.dumps({"category": "linear", "symbol": "BTCUSDT", "qty": "0.001"})
    assert verify_rest(headers(body), body, KEYS, NOW).api_key == "k1"
    query = "category=linear&symbol=BTCUSDT"
    assert verify_rest(headers(query), query, KEYS, NOW + 4000).api_key == "k1"


@pytest.mark.parametrize("mutate,code", [
    (lambda h, p: (h, p + " "), 10004),                                     # body changed
    (lambda h, p: ({**h, "x-bapi-sign": h["x-bapi-sign"][::-1]}, p), 10004),
    (lambda h, p: (headers(p, secret="wrong"), p), 10004),
    (lambda h, p: ({**h, "x-bapi-api-key": "nobody"}, p), 10003),
    (lambda h, p: ({k: v for k, v in h.items() if k != "x-bapi-api-key"}, p), 10003),
    (lambda h, p: (headers(p, ts=NOW - 5001), p), 10002),                    # expired
    (lambda h, p: (headers(p, ts=NOW + 1000), p), 10002),                    # from the future
    (lambda h, p: ({**h, "x-bapi-timestamp": "soon"}, p), 10002),
])
def test_rejections(mutate, code):
    payload = "category=linear"
    h, p = mutate(headers(payload), payload)
    with pytest.raises(VenueError) as info:
        verify_rest(h, p, KEYS, NOW)
    assert info.value.ret_code == code
    assert "s3cret" not in info.value.ret_msg


def test_ws_auth():
    expires = NOW + 1000
    assert verify_ws_auth(["k1", expires, ws_signature("s3cret", expires)], KEYS, NOW)
    for args, code in ((["k1", expires, ws_signature("bad", expires)], 10004),
                       (["k1", NOW - 1, ws_signature("s3cret", NOW - 1)], 10002),
                       (["zz", expires, "x"], 10003), ("nonsense", 10003)):
        with pytest.raises(VenueError) as info:
            verify_ws_auth(args, KEYS, NOW)
        assert info.value.ret_code == code


def test_faults_are_reproducible_for_a_seed():
    cfg = FaultConfig(rate_limit_prob=0.3, http_5xx_prob=0.2, timeout_prob=0.1)
    def run(seed):
        inj = FaultInjector(cfg, seed)
        return [inj.decide("/v5/order/create") for _ in range(200)]

    runs = [run(seed) for seed in (1, 1, 2)]
    assert runs[0] == runs[1] != runs[2]
    hits = sum(d.rate_limit for d in runs[0])
    assert 30 < hits < 90
    quiet = FaultInjector(FaultConfig(), 1)
    assert not any(quiet.decide("/x").any for _ in range(100))


def test_fault_paths_filter():
    inj = FaultInjector(FaultConfig(http_5xx_prob=1.0, paths=["/v5/order/create"]), 0)
    assert inj.decide("/v5/order/create").http_5xx == 503
    assert inj.decide("/v5/market/kline").http_5xx is None


def test_rate_limiter_rolling_window_and_headers():
    rl = RateLimiter(2)
    assert rl.hit("k", "/p", 1_000) == (True, {"X-Bapi-Limit": "2", "X-Bapi-Limit-Status": "1",
                                               "X-Bapi-Limit-Reset-Timestamp": "1000"})
    assert rl.hit("k", "/p", 1_500)[0]
    # over the limit: refused until the oldest request leaves the rolling second
    assert rl.hit("k", "/p", 1_999) == (False, {"X-Bapi-Limit": "2", "X-Bapi-Limit-Status": "0",
                                                "X-Bapi-Limit-Reset-Timestamp": "2000"})
    assert rl.hit("k", "/other", 1_999)[0] and rl.hit("k2", "/p", 1_999)[0]
    assert rl.hit("k", "/p", 2_000)[0]            # 1_000 left the window, 1_500 is still in
    assert not rl.hit("k", "/p", 2_100)[0]
    assert rl.hit("k", "/p", 2_500)[0]


def test_rate_limits_follow_bybits_table_unless_overridden():
    rl = RateLimiter()
    assert rl.limit("/v5/order/create") == 10 and rl.limit("/v5/order/realtime") == 50
    allowed = [rl.hit("k", "/v5/order/create", 5_000 + i)[0] for i in range(12)]
    assert allowed == [True] * 10 + [False] * 2
    assert all(rl.hit("k", "/v5/position/list", 5_000 + i)[0] for i in range(50))
    assert not rl.hit("k", "/v5/position/list", 5_100)[0]
    assert BYBIT_LIMITS_PER_S["/v5/order/cancel-all"] == 10
    rl.override_per_s = 1000
    assert rl.limit("/v5/order/create") == 1000


def test_ip_limit_bans_for_the_configured_time():
    guard = IpGuard()
    assert all(guard.banned("1.2.3.4", 10_000 + i, 5, 600) is None for i in range(5))
    assert guard.banned("1.2.3.4", 10_010, 5, 600) == 10_010 + 600_000   # the 6th in 5 s
    assert guard.banned("1.2.3.4", 609_000, 5, 600) == 610_010           # still banned
    assert guard.banned("5.6.7.8", 10_010, 5, 600) is None               # per IP
    assert guard.banned("1.2.3.4", 610_010, 5, 600) is None              # lifted
    assert guard.banned("9.9.9.9", 0, None, 600) is None                 # no limit
    guard.ban_everyone(1_000, 2.0)
    assert guard.banned("9.9.9.9", 2_999, None, 600) == 3_000
    guard.ban_everyone(3_000, 0)
    assert guard.banned("1.2.3.4", 3_000, None, 600) is None
