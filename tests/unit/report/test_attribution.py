"""Issue 16 part 7: the per-instrument rows add up to the total, exactly.

Runs with trades (opens, adds, partial closes, flips), fees, funding and slippage (fills away
from the bar's close) are booked by the portfolio's own ledger (``tm_portfolio.domain.ledger``),
whose equity is the snapshots' equity; the report's attribution must split that equity by
instrument to the last Decimal, and the report's rows (PnL, fees, funding, returns) must sum to
its total row.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tm_app.record import RunRecord
from tm_app.report.attribution import attribute
from tm_app.report.html import build_summary
from tm_app.stats import run_stats
from tm_common.bus.streams import EXEC_REPORT, MD_BAR, PORTFOLIO_SNAPSHOT
from tm_common.events import BarClosed, Envelope
from tm_common.events.orders import FundingSettled, OrderFilled
from tm_common.events.portfolio import PortfolioSnapshotted, PositionView
from tm_portfolio.domain.ledger import Ledger

H4 = 4 * 3_600_000
T0 = 1_738_195_200_000
INITIAL = D(10000)
START = {"BTCUSDT": D(100), "ETHUSDT": D(50), "SOLUSDT": D(20)}

# one bar: per instrument a close move (bps) and maybe a fill (signed qty, slippage bps), and
# maybe a funding settlement
step = st.tuples(
    st.lists(st.integers(-300, 300), min_size=3, max_size=3),
    st.lists(st.one_of(st.none(), st.tuples(st.sampled_from(["0.5", "1", "1.5", "2", "-0.5",
                                                             "-1", "-2", "-3"]),
                                            st.integers(0, 20))), min_size=3, max_size=3),
    st.booleans())


def build_run(steps: list, flows: dict[int, D] | None = None) -> tuple[RunRecord, Ledger]:
    """A RunRecord whose snapshots are the ledger's bookings of its fills and funding (and of
    ``flows``: bar index → an external flow booked before that bar's snapshot)."""
    streams: dict[str, list[Envelope]] = {MD_BAR: [], EXEC_REPORT: [], PORTFOLIO_SNAPSHOT: []}
    n = 0

    def put(stream: str, body) -> None:
        nonlocal n
        n += 1
        streams[stream].append(Envelope.root(body, key=f"k{n}", correlation_id=f"c{n}",
                                             ts_event_ns=n, ts_init_ns=n))
    led = Ledger(initial=INITIAL)
    close = dict(START)

    def bar_and_snapshot(i: int, moves: list[int]) -> None:
        t = T0 + i * H4
        for (inst, c), mv in zip(list(close.items()), moves):
            close[inst] = (c * (1 + D(mv) / D(10000))).quantize(D("0.01"))
            put(MD_BAR, BarClosed(instrument=inst, open_time_ms=t, close_time_ms=t + H4 - 1,
                                  open=c, high=max(c, close[inst]), low=min(c, close[inst]),
                                  close=close[inst], volume=D(1), source="replay"))
            led.mark(inst, close[inst], t)
        pos = tuple(PositionView(instrument=s, qty=p.size, avg_price=p.avg_price,
                                 mark_price=led.marks[s],
                                 unrealised_pnl=p.unrealised_pnl(led.marks[s]))
                    for s, p in sorted(led.positions.items()) if p.size != 0)
        eq = led.equity()
        put(PORTFOLIO_SNAPSHOT, PortfolioSnapshotted(
            bar_time_ms=t, equity=eq, cash=led.cash(), realised_pnl=led.realised_pnl,
            unrealised_pnl=led.unrealised_pnl(), fees=led.fees, funding=led.funding,
            peak_equity=max(eq, INITIAL), drawdown=0.0, positions=pos,
            transfers=led.transfers))

    for i, (moves, fills, fund) in enumerate(steps):
        if flows and i in flows:
            led.transfer(flows[i], reason="withdrawal", at_ms=T0 + i * H4)
        bar_and_snapshot(i, moves)
        at = T0 + (i + 1) * H4              # at bar i's close, stamped as the venue does
        for (inst, c), f in zip(list(close.items()), fills):
            if f is not None:                  # at the last close with slippage, fee 5.5 bps
                qty, slip = D(f[0]), D(f[1])
                side = "Buy" if qty > 0 else "Sell"
                price = (c * (1 + (1 if qty > 0 else -1) * slip / D(10000))).quantize(D("0.01"))
                fee = (abs(qty) * price * D("0.00055")).quantize(D("0.00000001"))
                put(EXEC_REPORT, OrderFilled(intent_id=f"i{i}", order_link_id=f"l{i}{inst}",
                                             order_id="o", exec_id=f"e{i}{inst}",
                                             instrument=inst, side=side, qty=abs(qty),
                                             price=price, fee=fee, exec_time_ms=at))
                led.apply_fill(inst, side, abs(qty), price, fee)
            if fund:
                size = led.position(inst).size
                pay = (size * c * D("0.0001")).quantize(D("0.00000001"))
                put(EXEC_REPORT, FundingSettled(instrument=inst, settle_time_ms=at,
                                                rate=D("0.0001"), position_qty=size,
                                                mark_price=c, payment=pay))
                led.apply_funding(inst, pay)
    bar_and_snapshot(len(steps), [0, 0, 0])             # the snapshot that accounts the last fills
    return RunRecord(streams=streams, dead_letters={}), led


FIXED = [([100, -50, 20], [("1", 5), ("-2", 0), None], False),
         ([120, 80, -40], [("0.5", 3), None, ("1.5", 10)], True),
         ([-200, 30, 60], [("-3", 7), ("1", 2), None], False),         # BTC flips, ETH reduces
         ([50, -90, 10], [None, ("-1", 4), ("-1.5", 1)], True),          # SOL closes
         ([-30, 40, 25], [("2", 0), None, ("-1", 6)], True)]             # BTC flips back


def test_per_instrument_pnl_fees_funding_and_returns_add_up_to_the_total():
    rec, led = build_run(FIXED)
    att = attribute(rec, INITIAL)
    last = rec.snapshots[-1]
    assert att.residual == 0 and att.unaccounted == 0
    assert sum(a.pnl for a in att.instruments.values()) == last.equity - INITIAL   # exact
    assert sum(a.fees for a in att.instruments.values()) == led.fees == last.fees
    assert sum(a.funding for a in att.instruments.values()) == led.funding == last.funding
    for s, a in att.instruments.items():                     # each row is the ledger's own
        p = led.position(s)
        assert a.pnl == p.realised_pnl + p.unrealised_pnl(led.marks[s]) - p.fees - p.funding
        assert a.slippage > 0                                 # every fill paid some
    st_ = run_stats(rec, float(INITIAL))
    per, tot = st_["per_instrument"], st_["total"]
    assert sum(r["pnl"] for r in per.values()) == pytest.approx(tot["pnl"], abs=0.005)
    assert sum(r["fees"] for r in per.values()) == pytest.approx(tot["fees"], abs=1e-9)
    assert sum(r["funding"] for r in per.values()) == pytest.approx(tot["funding"], abs=1e-9)
    assert sum(r["total_return"] for r in per.values()) == pytest.approx(tot["total_return"],
                                                                      abs=1e-12)
    assert tot["funding"] != 0 and tot["fees"] > 0 and tot["residual"] == 0


def test_an_external_flow_is_not_pnl_nor_a_return():
    rec, led = build_run(FIXED, flows={2: D(-4000)})
    att = attribute(rec, INITIAL)
    last = rec.snapshots[-1]
    assert last.transfers == D(-4000)
    assert att.residual == 0                                 # the flow is not unexplained PnL
    assert sum(a.pnl for a in att.instruments.values()) == last.equity + 4000 - INITIAL
    tot = run_stats(rec, float(INITIAL))["total"]
    assert tot["final_equity"] == float(last.equity)
    assert tot["pnl"] == pytest.approx(float(last.equity + 4000 - INITIAL), abs=1e-6)
    assert tot["max_drawdown"] < 0.2                          # 40 % withdrawn is no drawdown
    assert tot["total_return"] > -0.1


@settings(max_examples=60, deadline=None)
@given(st.lists(step, min_size=1, max_size=12))
def test_the_identity_holds_for_any_run(steps):
    rec, led = build_run(steps)
    att = attribute(rec, INITIAL)
    assert att.residual == 0
    assert sum(a.pnl for a in att.instruments.values()) == led.equity() - INITIAL
    for s, a in att.instruments.items():
        p = led.position(s)
        assert a.qty == p.size and a.fees == p.fees and a.funding == p.funding


def test_the_report_shows_a_total_row_and_later_fills_are_not_counted():
    rec, _ = build_run(FIXED)
    late = OrderFilled(intent_id="x", order_link_id="x", order_id="o", exec_id="x",
                       instrument="BTCUSDT", side="Buy", qty=D(1), price=D(1), fee=D(5),
                       exec_time_ms=T0 + 99 * H4)
    rec.streams[EXEC_REPORT].append(Envelope.root(late, key="x", correlation_id="x",
                                                  ts_event_ns=0, ts_init_ns=0))
    att = attribute(rec, INITIAL)
    assert att.unaccounted == 1 and att.residual == 0
    summary = build_summary(rec, initial_equity=float(INITIAL), meta={"mode": "test"})
    assert summary["stats"]["total"]["unaccounted_executions"] == 1
    from tm_app.report.sections import per_instrument
    page = per_instrument(summary["stats"])
    assert "<td>total</td>" in page and "of which slippage" in page
