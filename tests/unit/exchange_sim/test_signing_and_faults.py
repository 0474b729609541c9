"""Signature checks against pybit's own signer; seeded faults; rate-limit windows."""

from __future__ import annotations

import json

import pytest
from pybit._http_manager import generate_signature
from tm_exchange_sim.faults import FaultConfig, FaultInjector, RateLimiter
from tm_exchange_sim.matching import VenueError
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


def test_rate_limiter_windows():
    rl = RateLimiter(2)
    assert rl.hit("k", "/p", 1_000) == (True, 1, 2_000)
    assert rl.hit("k", "/p", 1_500) == (True, 0, 2_000)
    assert rl.hit("k", "/p", 1_999) == (False, 0, 2_000)
    assert rl.hit("k", "/other", 1_999)[0]
    assert rl.hit("k", "/p", 2_000) == (True, 1, 3_000)
    assert rl.headers(0, 2_000) == {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit": "2",
                                    "X-Bapi-Limit-Reset-Timestamp": "2000"}
