"""The venue's journal (``TM_SIM_JOURNAL_FILE``): a venue restored from it is the same account
as the one that wrote it, orders, ids, executions, positions, wallet and instruments alike;
inputs after the restore are kept too; a torn last line is skipped and any other bad line
stops the restore with its number."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from tm_common.history import BAR_INTERVAL_MS, HistoryBar
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.journal import Journal, JournalError
from tm_exchange_sim.live import PushedFunding
from tm_exchange_sim.matching.errors import RetCodeError
from tm_exchange_sim.restore import replay_journal
from tm_exchange_sim.routes_trade import trade_handlers
from tm_exchange_sim.serialise import closed_pnl_dict, execution_dict, order_dict, wallet_entry
from tm_exchange_sim.state import SimState

T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC
H4 = BAR_INTERVAL_MS
SYMS = ["BTCUSDT", "ETHUSDT"]


def bar(open_ms: int, close: str, low: str, high: str) -> HistoryBar:
    return HistoryBar(open_ms, close, high, low, close, "10")


def venue(path) -> SimState:
    """A paper venue as ``tm paper`` starts one: live feed, restored from its journal."""
    st = SimState(ExchangeSimSettings.from_values(sim_feed="live", sim_symbols=SYMS,
                                                  sim_slippage_bps=Decimal(2), sim_seed=7))
    replay_journal(st, Journal(path))
    return st


def view(st: SimState) -> dict:
    """What a client of the venue can read back."""
    eng = st.engine
    h = trade_handlers(st)
    return {"clock": (st.clock_ms, st.now_ms), "marks": dict(eng.marks),
            "orders": [order_dict(o) for o in eng.orders.values()],
            "open": [o.order_id for o in eng.open_orders()],
            "executions": [execution_dict(e) for e in eng.executions],
            "closed_pnl": [closed_pnl_dict(c) for c in eng.closed_pnl],
            "positions": {s: h[("GET", "/v5/position/list")]({"category": "linear",
                                                              "symbol": s}) for s in SYMS},
            "wallet": wallet_entry(eng),
            "instruments": {s: i.info() for s, i in st.instruments.items()},
            "klines": {s: st.feed.klines(s, st.clock_ms, None, None, 10) for s in SYMS}}


def trade(st: SimState, path: str, **params) -> dict | None:
    try:
        return trade_handlers(st)[("POST", path)]({"category": "linear", **params})
    except RetCodeError:
        return None


def a_week(st: SimState) -> None:
    """Bars and funding pushed, orders taken and refused, a limit resting then filled, a
    cancel, leverage, a new qty step from the market: what a paper venue meets."""
    st.push_bars([("BTCUSDT", bar(T0, "94000", "93000", "95000")),
                  ("ETHUSDT", bar(T0, "3300", "3250", "3350"))])
    trade(st, "/v5/position/set-leverage", symbol="BTCUSDT", buyLeverage="3", sellLeverage="3")
    assert trade(st, "/v5/order/create", symbol="BTCUSDT", side="Buy", orderType="Market",
                 qty="0.05", orderLinkId="a1")
    assert trade(st, "/v5/order/create", symbol="BTCUSDT", side="Buy", orderType="Market",
                 qty="0.05", orderLinkId="a1") is None                     # duplicate: refused
    trade(st, "/v5/order/create", symbol="ETHUSDT", side="Sell", orderType="Limit",
          qty="1", price="3400", orderLinkId="e1")
    trade(st, "/v5/order/create", symbol="ETHUSDT", side="Buy", orderType="Limit",
          qty="1", price="3000", orderLinkId="e2")
    trade(st, "/v5/order/cancel", symbol="ETHUSDT", orderLinkId="e2")
    st.push_funding([PushedFunding("BTCUSDT", T0 + 2 * H4, Decimal("0.0001"))])
    st.push_bars([("BTCUSDT", bar(T0 + H4, "95000", "94000", "96000")),
                  ("ETHUSDT", bar(T0 + H4, "3380", "3300", "3450")),       # e1 fills at 3400
                  ("BTCUSDT", bar(T0 + H4, "1", "1", "1"))])               # a repeat
    ask = st.instruments["ETHUSDT"].info()
    st.replace_instruments({"list": [{**ask, "lotSizeFilter": {
        **ask["lotSizeFilter"], "qtyStep": "0.1", "minOrderQty": "0.1"}}]})
    st.push_bars([("BTCUSDT", bar(T0 + 2 * H4, "93000", "92000", "95500")),
                  ("ETHUSDT", bar(T0 + 2 * H4, "3200", "3150", "3390"))])
    trade(st, "/v5/order/create", symbol="BTCUSDT", side="Sell", orderType="Market",
          qty="0.05", reduceOnly=True, orderLinkId="a2")


def test_a_restored_venue_is_the_same_account(tmp_path):
    path = tmp_path / "venue.jsonl"
    first = venue(path)
    a_week(first)
    want = view(first)
    assert want["executions"] and want["closed_pnl"] and want["open"] == []
    assert [o["orderStatus"] for o in want["orders"]] == ["Filled", "Filled", "Cancelled",
                                                          "Filled"]
    assert want["instruments"]["ETHUSDT"]["lotSizeFilter"]["qtyStep"] == "0.1"
    # a relay pushing its funding again (restarted, or a resumed run) adds nothing
    first.push_funding([PushedFunding("BTCUSDT", T0 + 2 * H4, Decimal("0.0001"))])
    first.journal.close()
    kinds = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert kinds.count("funding") == 1 and kinds.count("bars") == 3

    second = venue(path)                         # the process restarted
    assert view(second) == want
    # it goes on recording: a third start has what the second one took
    second.push_bars([("BTCUSDT", bar(T0 + 3 * H4, "94500", "92500", "95000"))])
    trade(second, "/v5/order/create", symbol="BTCUSDT", side="Buy", orderType="Market",
          qty="0.01", orderLinkId="a3")
    want = view(second)
    second.journal.close()
    assert view(venue(path)) == want


def test_without_a_journal_nothing_is_written_and_a_fresh_one_starts_empty(tmp_path):
    plain = SimState(ExchangeSimSettings.from_values(sim_feed="live", sim_symbols=SYMS))
    a_week(plain)                                 # no journal: nothing recorded anywhere
    assert list(tmp_path.iterdir()) == []
    fresh = venue(tmp_path / "new.jsonl")
    assert view(fresh)["orders"] == [] and fresh.clock_ms == 0


def test_a_torn_last_line_is_skipped_and_a_bad_line_before_it_is_named(tmp_path):
    path = tmp_path / "venue.jsonl"
    st = venue(path)
    a_week(st)
    st.journal.close()
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    torn = venue(path)                            # killed while writing the last order
    assert [o["orderLinkId"] for o in view(torn)["orders"]] == ["a1", "e1", "e2"]
    torn.push_bars([("BTCUSDT", bar(T0 + 3 * H4, "94500", "92500", "95000"))])
    torn.journal.close()
    assert json.loads(path.read_text().splitlines()[-1])["kind"] == "bars"   # the torn one cut
    assert venue(path).clock_ms == T0 + 3 * H4

    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    with pytest.raises(JournalError, match="line 2 is unreadable"):
        venue(path)
    path.write_text(json.dumps({"kind": "teleport"}) + "\n")
    with pytest.raises(JournalError, match="entry 1 .*teleport"):
        venue(path)


def test_a_restarted_venue_takes_its_newer_instruments_file_after_the_journal(tmp_path):
    """The journal ends on ETHUSDT's qty step 0.1; the instruments file the venue (re)starts
    with says 0.01 (the relay rewrote it, or ``tm paper --resume`` read the market again): the
    file wins, and the next restart ends the same way."""
    from tm_exchange_sim.app import create_app
    from tm_exchange_sim.matching import DEFAULT_INSTRUMENTS

    path, listed = tmp_path / "venue.jsonl", tmp_path / "instruments.json"
    first = venue(path)
    a_week(first)
    first.journal.close()
    eth = {**DEFAULT_INSTRUMENTS["ETHUSDT"].info()}
    eth["lotSizeFilter"] = {**eth["lotSizeFilter"], "qtyStep": "0.01", "minOrderQty": "0.01"}
    listed.write_text(json.dumps({"retCode": 0, "result": {"list": [eth]}}))

    def started() -> SimState:
        settings = ExchangeSimSettings.from_values(
            sim_feed="live", sim_symbols=SYMS, sim_slippage_bps=Decimal(2), sim_seed=7,
            sim_journal_file=path, sim_instruments_file=listed)
        st: SimState = create_app(settings).state.sim
        assert st.journal is not None
        st.journal.close()
        return st

    again = started()
    assert again.instruments["ETHUSDT"].info()["lotSizeFilter"]["qtyStep"] == "0.01"
    assert view(again)["executions"] == view(first)["executions"]       # the account as it was
    third = started()
    assert view(third) == view(again)


def test_an_input_whose_outcome_differs_on_replay_stops_the_start(tmp_path):
    """Each POST is journaled with its outcome; a replay that takes what was refused, or
    refuses what was taken (another venue's journal, another version), is named, not
    restored into a different account."""
    path = tmp_path / "venue.jsonl"
    st = venue(path)
    a_week(st)
    st.journal.close()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    trades = [e for e in entries if e["kind"] == "trade"]
    assert {e["outcome"] for e in trades} == {"ok", "refused"}
    dup = next(i for i, e in enumerate(entries) if e.get("outcome") == "refused")
    for changed, words in ((dict(entries[dup], outcome="ok"), "taken then, refused now"),
                           (dict(entries[dup], params={**entries[dup]["params"],
                                                       "orderLinkId": "new"}), "taken now")):
        path.write_text("\n".join(json.dumps(e) for e in
                                  [*entries[:dup], changed, *entries[dup + 1:]]) + "\n")
        with pytest.raises(JournalError, match=f"entry {dup + 1} .*{words}"):
            venue(path)
