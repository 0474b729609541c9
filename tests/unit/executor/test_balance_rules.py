"""When the venue's wallet balance can be compared with the portfolio's cash, what funding the
snapshot does not hold yet, and what counts as a difference (tm_executor.domain.balance)."""

from decimal import Decimal

import pytest
from tm_executor.config import ExecutorSettings
from tm_executor.domain.balance import (
    difference,
    funding_unpublished,
    pending_funding,
    usdt_balance,
)

H = 3_600_000
INTERVALS = {"BTCUSDT": 8 * H, "XUSDT": 4 * H}
D = Decimal


def unpublished(now_ms, asked, held=frozenset({"BTCUSDT", "XUSDT"})):
    return funding_unpublished(("BTCUSDT", "XUSDT"), venue_now_ms=now_ms,
                               intervals_ms=INTERVALS, asked_ms=asked, held=set(held))


def test_the_usdt_wallet_balance_is_the_cash_not_the_equity():
    wallet = {"totalEquity": "105", "coin": [{"coin": "BTC", "walletBalance": "1"},
                                             {"coin": "USDT", "walletBalance": "99.125",
                                              "equity": "105"}]}
    assert usdt_balance(wallet) == D("99.125")
    with pytest.raises(ValueError, match="no USDT"):
        usdt_balance({"coin": [{"coin": "BTC", "walletBalance": "1"}]})


def test_every_settlement_up_to_now_published_compares():
    # now 21:00: BTC settled at 16:00, X (4 h) at 20:00
    assert unpublished(21 * H, {"BTCUSDT": 16 * H, "XUSDT": 20 * H}) is None


def test_a_settlement_the_executor_has_not_asked_the_venue_for_waits():
    why = unpublished(16 * H + 5000, {"BTCUSDT": 8 * H, "XUSDT": 16 * H})
    assert why is not None and "BTCUSDT" in why and "not published" in why
    why = unpublished(21 * H, {"BTCUSDT": 16 * H, "XUSDT": 16 * H})
    assert why is not None and "XUSDT" in why
    assert unpublished(21 * H, {"XUSDT": 20 * H}) is not None        # never asked


def test_a_symbol_flat_on_the_venue_and_in_the_snapshot_pays_no_funding():
    assert unpublished(16 * H + 5000, {}, held=frozenset()) is None
    assert unpublished(16 * H + 5000, {}, held={"XUSDT"}) is not None


def test_the_funding_not_in_the_snapshot_is_what_came_after_it_or_is_stamped_after_its_open():
    snap_entry, snap_open = (20 * H, 0), 16 * H          # the bar opening 16:00, taken 20:00
    settled = [
        ((16 * H, 5), "BTCUSDT", 16 * H, D("1.5")),      # in it: published before, at its open
        ((20 * H, 7), "XUSDT", 20 * H, D("0.25")),       # published after it
        ((20 * H, 8), "XUSDT", 20 * H, D("0.25")),       # the same settlement again: once
        ((19 * H, 1), "BTCUSDT", 20 * H, D(-2)),         # published before, stamped after its open
        ((20 * H, 9), "BTCUSDT", 12 * H, D("0.5")),      # late: an old settlement, after it
    ]
    got = pending_funding(settled, snapshot_entry=snap_entry, snapshot_open_ms=snap_open)
    assert got == D("0.25") + D(-2) + D("0.5")
    assert pending_funding([], snapshot_entry=snap_entry, snapshot_open_ms=snap_open) == 0


def test_a_difference_within_the_tolerance_is_rounding():
    tol = D("0.01")
    assert difference(D("100.005"), D(100), tol) is None
    assert difference(D("100.01"), D(100), tol) is None
    assert difference(D("100.02"), D(100), tol) == D("0.02")
    assert difference(D(60), D(100), tol) == D(-40)
    assert difference(D("100.000001"), D(100), D(0)) == D("0.000001")


@pytest.mark.parametrize(("mode", "env", "on"), [
    ("paper", None, True), ("live", None, True), ("testnet", None, True),
    ("replay", None, False), ("replay", True, True), ("live", False, False)])
def test_the_wallet_check_follows_the_mode_unless_set(mode, env, on):
    assert ExecutorSettings(mode=mode, balance_reconcile=env).balance_check is on
