"""``POST /sim/transfer`` against the sim as a real process: a deposit or a withdrawal shows in
the signed ``/v5/account/wallet-balance`` pybit reads and on the private ``wallet`` stream; a
withdrawal above the available balance is a 400 with its reason and changes nothing; with
``TM_ADMIN_TOKEN`` the route needs the token; and a venue killed and started again on its
journal has the same wallet."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal as D

import httpx
import websockets
from tm_common.testing.redis import free_port
from tm_common.testing.sim import run_sim
from tm_exchange_sim.signing import ws_signature

ADMIN = "itest-admin-token-5b0e3f6a9c12"
T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC
H4 = 4 * 3600 * 1000


def transfer(sim, amount, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{sim.url}/sim/transfer", json={"amount": amount}, headers=headers,
                      timeout=10)


def wallet(session) -> dict:
    (entry,) = session.get_wallet_balance(accountType="UNIFIED")["result"]["list"]
    return entry


def test_a_deposit_and_a_withdrawal_show_in_the_signed_wallet_balance(sim, session):
    r = transfer(sim, "5000")
    assert r.status_code == 200, r.text
    assert r.json() == {"amount": "5000", "direction": "in", "wallet_balance": "105000",
                        "deposits": "105000", "equity": "105000", "available": "105000"}
    w = wallet(session)
    assert (w["totalWalletBalance"], w["totalEquity"], w["totalAvailableBalance"]) == \
        ("105000", "105000", "105000")
    assert (w["coin"][0]["walletBalance"], w["coin"][0]["equity"]) == ("105000", "105000")
    assert w["coin"][0]["cumRealisedPnl"] == "0"
    assert transfer(sim, -2500.5).json()["wallet_balance"] == "102499.5"    # a JSON number
    assert wallet(session)["totalWalletBalance"] == "102499.5"
    assert sim.get("/sim/account")["totalWalletBalance"] == "102499.5"


def test_a_withdrawal_above_the_available_balance_is_a_400_and_changes_nothing(sim, session):
    session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                        qty="1")                                    # margin in use
    before = wallet(session)
    available = D(before["totalAvailableBalance"])
    assert D(0) < available < D(before["totalWalletBalance"])
    too_much = available + D("0.01")
    r = transfer(sim, str(-too_much))
    assert r.status_code == 400
    assert r.json() == {"detail": f"withdrawal of {too_much} USDT refused: more than the "
                                  f"available balance, {available} USDT"}
    for bad in ("0", "NaN", "Infinity", "ten"):
        r = transfer(sim, bad)
        assert r.status_code == 400 and r.json()["detail"].startswith("transfer amount"), r.text
    assert wallet(session) == before and sim.get("/sim/account") == before
    r = transfer(sim, str(-available))                              # all of it is allowed
    assert r.status_code == 200 and D(r.json()["available"]) == 0
    assert D(wallet(session)["totalWalletBalance"]) == D(before["totalWalletBalance"]) - available


def test_the_wallet_stream_pushes_the_transfer(sim, session):
    async def go() -> dict:
        expires = int(time.time() * 1000) + 5000
        async with websockets.connect(sim.ws_url + "/v5/private") as ws:
            await ws.send(json.dumps({"op": "auth", "args": [
                session.api_key, expires, ws_signature(session.api_secret, expires)]}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["success"] is True
            await ws.send(json.dumps({"op": "subscribe", "args": ["wallet"]}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["success"] is True
            r = await asyncio.to_thread(transfer, sim, "777.25")
            assert r.status_code == 200, r.text
            return json.loads(await asyncio.wait_for(ws.recv(), 5))
    msg = asyncio.run(go())
    assert msg["topic"] == "wallet"
    (entry,) = msg["data"]
    assert entry["totalWalletBalance"] == "100777.25"
    assert entry["coin"][0]["walletBalance"] == "100777.25"


def test_with_an_admin_token_the_transfer_needs_it(tmp_path):
    with run_sim(tmp_path, TM_ADMIN_TOKEN=ADMIN, TM_SIM_SYMBOLS='["BTCUSDT"]') as sim:
        for token in (None, "wrong-token"):
            r = transfer(sim, "5000", token)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
        assert sim.get("/sim/account")["totalWalletBalance"] == "100000"
        r = transfer(sim, "5000", ADMIN)
        assert r.status_code == 200 and r.json()["wallet_balance"] == "105000"
        assert wallet(sim.session())["totalWalletBalance"] == "105000"


def test_a_venue_restarted_from_its_journal_has_the_same_wallet(tmp_path):
    journal = tmp_path / "venue.jsonl"
    port = free_port()
    env = {"TM_SIM_FEED": "live", "TM_SIM_SYMBOLS": '["BTCUSDT"]',
           "TM_SIM_JOURNAL_FILE": str(journal)}
    bar = {"symbol": "BTCUSDT", "open_time_ms": T0, "open": "94000", "high": "94000",
           "low": "94000", "close": "94000", "volume": "10"}
    with run_sim(tmp_path, port=port, **env) as sim:
        httpx.post(f"{sim.url}/sim/bars", json={"bars": [bar]}, timeout=5).raise_for_status()
        assert transfer(sim, "5000").status_code == 200
        sim.session().place_order(category="linear", symbol="BTCUSDT", side="Buy",
                                  orderType="Market", qty="1")          # 9,400 of margin
        assert transfer(sim, "-100000").status_code == 400                # above available
        assert transfer(sim, "-1234.5").status_code == 200
        before = wallet(sim.session())
        assert sim.proc is not None
        sim.proc.kill()                                  # SIGKILL: nothing saved on the way out
        sim.proc.wait(timeout=10)
    with run_sim(tmp_path, port=port, **env) as again:
        assert wallet(again.session()) == before
        # the bars, the order and the three transfers
        assert again.get("/status")["journal"]["replayed_at_start"] == 5
    fees = D("94018.8") * D("0.00055")                                  # 2 bps slippage
    assert D(before["totalWalletBalance"]) == D("103765.5") - fees
    transfers = [json.loads(line) for line in journal.read_text().splitlines()
                 if '"transfer"' in line]
    assert transfers == [{"kind": "transfer", "amount": "5000", "outcome": "ok"},
                         {"kind": "transfer", "amount": "-100000", "outcome": "refused"},
                         {"kind": "transfer", "amount": "-1234.5", "outcome": "ok"}]
