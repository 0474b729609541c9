"""Transfers into and out of the simulated UNIFIED wallet (a person's deposit or withdrawal):
the wallet and the deposits move alike (realised PnL does not), a withdrawal takes at most the
available balance the order checks use, what is not a finite non-zero number is refused, the
engine queues a ``wallet`` event, and the venue's journal keeps them (refused ones too) so that a
restarted venue has the same wallet. The route over ASGI: ``POST /sim/transfer``."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from tm_common.history import BAR_INTERVAL_MS, HistoryBar
from tm_exchange_sim.app import create_app
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.journal import Journal, JournalError
from tm_exchange_sim.matching import DEFAULT_INSTRUMENTS, MatchingEngine, SlippageModel
from tm_exchange_sim.matching.account import Account
from tm_exchange_sim.matching.errors import INSUFFICIENT_BALANCE, RetCodeError
from tm_exchange_sim.matching.models import BUY, LIMIT, MARKET, Bar, OrderRequest
from tm_exchange_sim.restore import replay_journal
from tm_exchange_sim.routes_trade import trade_handlers
from tm_exchange_sim.serialise import wallet_entry
from tm_exchange_sim.state import SimState

H4 = BAR_INTERVAL_MS
T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC
BTC = "BTCUSDT"
TOKEN = "unit-admin-token-7d1f2c9e0b"


def engine() -> MatchingEngine:
    """1,000 USDT; BTCUSDT at 20,000, 2 bps slippage, leverage 10, Bybit's default fees."""
    eng = MatchingEngine(DEFAULT_INSTRUMENTS, initial_balance=D(1000),
                         slippage=SlippageModel(D(2)), default_leverage=D(10))
    eng.step(H4, {BTC: Bar(0, H4, *[D(20000)] * 4)})
    return eng


def margined(eng: MatchingEngine) -> None:
    """A long of 0.1 BTC (filled at 20,004.0, fee 1.10022) and a resting buy of 0.1 at 19,000:
    equity 998.49978, position IM 200, order IM 190 + 1.045: available 607.45478."""
    eng.place_order(OrderRequest(BTC, BUY, MARKET, D("0.1")))
    eng.place_order(OrderRequest(BTC, BUY, LIMIT, D("0.1"), D(19000)))
    eng.pop_events()


# ---- the account -------------------------------------------------------------------------
def test_a_deposit_and_a_withdrawal_move_the_wallet_and_the_deposits_alike():
    acc = Account(D(1000), D(10))
    assert acc.transfer(D("5000"), available=D(1000)) == D(5000)
    assert (acc.wallet_balance, acc.deposits) == (D(6000), D(6000))
    assert acc.transfer("-2500.25", available=D(6000)) == D("-2500.25")
    assert (acc.wallet_balance, acc.deposits) == (D("3499.75"), D("3499.75"))
    assert acc.transfer(7, available=D(0)) == D(7)          # a deposit needs nothing available
    assert acc.wallet_balance == D("3506.75") and acc.cum_fees == 0


def test_a_withdrawal_may_take_the_available_balance_and_no_more():
    eng = engine()
    margined(eng)
    assert eng.available_balance() == D("607.45478")
    before = (eng.wallet(), eng.account.deposits)
    with pytest.raises(ValueError, match=r"withdrawal of 607\.45479 USDT refused: more than the "
                                         r"available balance, 607\.45478 USDT"):
        eng.transfer(D("-607.45479"))
    assert (eng.wallet(), eng.account.deposits) == before and eng.pop_events() == []
    assert eng.transfer("-607.45478") == D("-607.45478")            # all of it
    assert eng.pop_events() == [("wallet", None)]
    w = eng.wallet()
    assert w["available"] == 0 and w["wallet_balance"] == D("391.44500")
    assert eng.account.deposits == D("392.54522")
    assert w["cum_realised_pnl"] == D("-1.10022")            # the fee: the transfer is not PnL
    with pytest.raises(ValueError, match="more than the available balance, 0"):
        eng.transfer(D("-0.00000001"))
    with pytest.raises(RetCodeError) as refused:                     # nothing left to open with
        eng.place_order(OrderRequest(BTC, BUY, MARKET, D("0.001")))
    assert refused.value.ret_code == INSUFFICIENT_BALANCE
    eng.transfer(D(100))                                             # a deposit frees margin
    eng.place_order(OrderRequest(BTC, BUY, MARKET, D("0.001")))
    assert eng.account.position(BTC).size == D("0.101")


@pytest.mark.parametrize("amount,message", [
    (D(0), "must not be 0"), ("0", "must not be 0"), ("-0.000", "must not be 0"),
    (0, "must not be 0"), (D("NaN"), "must be finite"), ("nan", "must be finite"),
    ("-Infinity", "must be finite"), (float("nan"), "must be finite"),
    (float("inf"), "must be finite"), ("abc", "not a decimal number"),
    ("", "not a decimal number"), ("1,5", "not a decimal number"),
    (True, "must be a decimal number, not bool"), (None, "must be a decimal number, not NoneType"),
    ([5], "must be a decimal number, not list"),
    (D("1e-30"), "would not be exact"), ("1e999999999", "would not be exact"),
])
def test_what_is_not_a_finite_non_zero_number_is_refused_and_changes_nothing(amount, message):
    eng = engine()
    with pytest.raises(ValueError, match=message):
        eng.transfer(amount)
    assert eng.account.wallet_balance == eng.account.deposits == D(1000)
    assert eng.pop_events() == []


# ---- the journal -------------------------------------------------------------------------
def live_venue(journal=None) -> SimState:
    """A paper venue (live feed, 100,000 USDT) with BTCUSDT at 94,000, restored from
    ``journal``."""
    st = SimState(ExchangeSimSettings.from_values(sim_feed="live", sim_symbols=[BTC],
                                                  sim_slippage_bps=D(2), sim_seed=7))
    if journal is not None:
        replay_journal(st, Journal(journal))
    if not st.engine.marks:
        st.push_bars([(BTC, HistoryBar(T0, "94000", "94500", "93500", "94000", "10"))])
    return st


def test_a_restarted_venue_has_the_same_wallet_and_refuses_what_was_refused(tmp_path):
    path = tmp_path / "venue.jsonl"
    first = live_venue(path)
    first.transfer("5000")
    trade_handlers(first)[("POST", "/v5/order/create")]({        # journaled: 9,400 of margin
        "category": "linear", "symbol": BTC, "side": "Buy", "orderType": "Market", "qty": "1"})
    with pytest.raises(ValueError, match="available balance"):
        first.transfer(D("-100000"))
    with pytest.raises(ValueError, match="must not be 0"):
        first.transfer("0")
    first.transfer(D("-1234.5"))
    first.journal.close()
    transfers = [json.loads(line) for line in path.read_text().splitlines()
                 if '"transfer"' in line]
    assert transfers == [{"kind": "transfer", "amount": "5000", "outcome": "ok"},
                         {"kind": "transfer", "amount": "-100000", "outcome": "refused"},
                         {"kind": "transfer", "amount": "0", "outcome": "refused"},
                         {"kind": "transfer", "amount": "-1234.5", "outcome": "ok"}]
    second = live_venue(path)
    assert wallet_entry(second.engine) == wallet_entry(first.engine)
    assert second.engine.account.deposits == first.engine.account.deposits == D("103765.5")
    assert wallet_entry(second.engine)["totalWalletBalance"] == str(
        D("103765.5") - first.engine.account.cum_fees)


def test_a_transfer_whose_outcome_differs_on_replay_stops_the_start(tmp_path):
    path = tmp_path / "venue.jsonl"
    st = live_venue(path)
    with pytest.raises(ValueError):
        st.transfer("-200000")
    st.journal.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1]) == {"kind": "transfer", "amount": "-200000",
                                     "outcome": "refused"}
    path.write_text("\n".join([*lines[:-1], lines[-1].replace("refused", "ok")]) + "\n")
    with pytest.raises(JournalError, match=f"entry {len(lines)} \\(transfer\\).*taken then, "
                                           "refused now"):
        live_venue(path)
    path.write_text("\n".join([*lines[:-1], json.dumps({"kind": "transfer", "amount": "-20",
                                                        "outcome": "refused"})]) + "\n")
    with pytest.raises(JournalError, match="refused then, taken now"):
        live_venue(path)


# ---- the route (ASGI) --------------------------------------------------------------------
@pytest.fixture
def client():
    settings = ExchangeSimSettings.from_values(sim_feed="live", sim_symbols=[BTC],
                                               admin_token=SecretStr(TOKEN))
    with TestClient(create_app(settings)) as c:
        yield c


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_the_route_answers_the_new_wallet_and_the_views_show_it(client):
    r = client.post("/sim/transfer", json={"amount": "5000"}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json() == {"amount": "5000", "direction": "in", "wallet_balance": "105000",
                        "deposits": "105000", "equity": "105000", "available": "105000"}
    r = client.post("/sim/transfer", json={"amount": -250.5}, headers=auth())   # a JSON number
    assert r.json() == {"amount": "-250.5", "direction": "out", "wallet_balance": "104749.5",
                        "deposits": "104749.5", "equity": "104749.5", "available": "104749.5"}
    account = client.get("/sim/account").json()
    assert (account["totalWalletBalance"], account["totalEquity"],
            account["totalAvailableBalance"]) == ("104749.5", "104749.5", "104749.5")
    assert account["coin"][0]["walletBalance"] == "104749.5"
    assert account["coin"][0]["cumRealisedPnl"] == "0"
    assert client.get("/status").json()["wallet_balance"] == "104749.5"
    metrics = client.get("/metrics").text
    assert 'tm_exchange_sim_transfers_total{direction="in"} 1.0' in metrics
    assert 'tm_exchange_sim_transfers_total{direction="out"} 1.0' in metrics


@pytest.mark.parametrize("body,status,detail", [
    ({"amount": "-100000.01"}, 400, "withdrawal of 100000.01 USDT refused: more than the "
                                    "available balance, 100000 USDT"),
    ({"amount": "0"}, 400, "transfer amount must not be 0 (> 0 deposits, < 0 withdraws)"),
    ({"amount": "NaN"}, 400, "transfer amount must be finite (not NaN or Infinity)"),
    ({"amount": "lots"}, 400, "transfer amount is not a decimal number"),
    ({"amount": True}, 422, None), ({}, 422, None), ({"amount": "1", "to": "x"}, 422, None),
])
def test_the_route_refuses_with_the_reason_and_changes_nothing(client, body, status, detail):
    before = client.get("/sim/account").json()
    r = client.post("/sim/transfer", json=body, headers=auth())
    assert r.status_code == status, r.text
    if detail is not None:
        assert r.json() == {"detail": detail}
    assert client.get("/sim/account").json() == before
    assert "tm_exchange_sim_transfers_total{" not in client.get("/metrics").text


def test_without_the_admin_token_the_route_is_a_401_and_changes_nothing(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = client.post("/sim/transfer", json={"amount": "5000"}, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/sim/account").json()["totalWalletBalance"] == "100000"
