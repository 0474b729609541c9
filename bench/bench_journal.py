"""The paper venue's journal (``TM_SIM_JOURNAL_FILE``): what keeping it costs and how long a
restart takes after a long paper run.

A live-feed venue with a journal takes ``--days`` of paper trading on 3 symbols: every 4 h the
three bars (one push, as the relay sends them), a market order per symbol (alternating sides),
and a funding rate per symbol every 8 h. Printed: the time of one journaled input (the engine's
work, the JSON line and its ``fsync``) p50/p99, the journal's size, and the restart (a new
venue replaying the journal) in seconds.

Usage: ``python bench/bench_journal.py [--days 365] [--json PATH]``. No Redis needed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import _benchlib as lib
from tm_common.history import HistoryBar
from tm_exchange_sim.config import ExchangeSimSettings
from tm_exchange_sim.journal import Journal
from tm_exchange_sim.live import PushedFunding
from tm_exchange_sim.restore import replay_journal
from tm_exchange_sim.routes_trade import trade_handlers
from tm_exchange_sim.state import SimState

T0 = 1_735_689_600_000
QTY = {"BTCUSDT": "0.01", "ETHUSDT": "0.1", "SOLUSDT": "1"}
PRICE = {"BTCUSDT": 94000.0, "ETHUSDT": 3300.0, "SOLUSDT": 190.0}


def venue(path: Path) -> SimState:
    st = SimState(ExchangeSimSettings.from_values(sim_feed="live", sim_symbols=list(QTY),
                                                  sim_seed=1))
    replay_journal(st, Journal(path))
    return st


def paper_run(st: SimState, days: int) -> list[float]:
    """Returns the µs of every journaled input."""
    create = trade_handlers(st)[("POST", "/v5/order/create")]
    took: list[float] = []

    def timed(fn, *args) -> None:
        t0 = time.perf_counter()
        fn(*args)
        took.append((time.perf_counter() - t0) * 1e6)

    for i in range(days * 6):
        t = T0 + i * lib.BAR_MS
        bars = []
        for s, p in PRICE.items():
            c = f"{p * (1 + 0.01 * ((i * 7919) % 13 - 6) / 6):.2f}"
            bars.append((s, HistoryBar(t, c, c, c, c, "10")))
        timed(st.push_bars, bars)
        if i % 2 == 0:
            timed(st.push_funding, [PushedFunding(s, t + lib.BAR_MS, Decimal("0.0001"))
                                    for s in QTY])
        for s, q in QTY.items():
            timed(create, {"category": "linear", "symbol": s, "orderType": "Market", "qty": q,
                           "side": "Buy" if i % 2 == 0 else "Sell", "orderLinkId": f"{s}-{i}"})
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "venue.jsonl"
        st = venue(path)
        start = lib.machine()
        took = paper_run(st, a.days)
        assert st.journal is not None
        st.journal.close()
        t0 = time.perf_counter()
        again = venue(path)
        restart_s = time.perf_counter() - t0
        assert again.engine.wallet() == st.engine.wallet(), "the replay is not the same account"
        res = {"days": a.days, "entries": len(took), "input_us": lib.pct(took),
               "journal_mb": path.stat().st_size / 1e6, "restart_s": restart_s,
               "orders": len(st.engine.orders), "machine_start": start,
               "machine_end": lib.machine()}
    p = res["input_us"]
    lib.report(a.json, res,
               f"venue journal, {a.days} days of paper trading (3 symbols): {res['entries']} "
               f"inputs, {res['orders']} orders",
               f"  one journaled input (engine + JSON line + fsync): p50 {p['p50']:.0f} µs, "
               f"p99 {p['p99']:.0f} µs",
               f"  journal {res['journal_mb']:.2f} MB; restart (replay) {restart_s:.2f} s")


if __name__ == "__main__":
    main()
