"""What the API fuzzing found in the sim, kept as plain regression tests against a real process.

- schemathesis: ``POST /sim/reset`` accepts any positive balance; with 10^20 USDT or more,
  ``GET /sim/account`` and the signed ``/v5/account/wallet-balance`` answered 500: rounding the
  balance to 8 decimals needs more than the default 28 significant digits.
- the hostile-body probe: a body with a ``NaN`` token (Python's JSON parser accepts it) failed
  validation, and the 422 that echoes the input could not be encoded: 500; and
  ``POST /sim/faults {"latency_ms": Infinity}`` was accepted (every later request would wait
  forever)."""

from __future__ import annotations

import httpx
import pytest
from tm_common.testing.sim import run_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with run_sim(tmp_path_factory.mktemp("sim-findings")) as s:
        yield s


@pytest.mark.parametrize("balance", ["1e20", "123456789012345678901234567.125", "0.000000001"])
def test_account_views_answer_for_any_accepted_balance(sim, balance):
    r = httpx.post(sim.url + "/sim/reset", json={"initial_balance": balance}, timeout=30)
    assert r.status_code == 200, r.text
    account = httpx.get(sim.url + "/sim/account", timeout=30)
    assert account.status_code == 200, account.text
    wallet = sim.session().get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
    assert wallet["totalEquity"] == account.json()["totalEquity"]


def test_non_finite_balance_is_refused_not_a_500(sim):
    r = httpx.post(sim.url + "/sim/reset", json={"initial_balance": "Infinity"}, timeout=30)
    assert r.status_code == 422
    assert httpx.get(sim.url + "/sim/account", timeout=30).status_code == 200


@pytest.mark.parametrize("path,body", [
    ("/sim/clock", b'{"steps": NaN}'), ("/sim/faults", b'{"latency_ms": Infinity}'),
    ("/sim/reset", b'{"start_ms": -Infinity}')])
def test_nan_tokens_get_a_422(sim, path, body):
    r = httpx.post(sim.url + path, content=body, headers={"Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
