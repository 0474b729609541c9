"""A small synthetic run (two instruments across a month boundary) as a RunRecord: bars,
regimes, sizing decisions, orders' fills, funding, a breaker trip and recovery, snapshots."""

from __future__ import annotations

from decimal import Decimal as D

from tm_app.record import RunRecord
from tm_common.bus.streams import (
    EXEC_REPORT,
    MD_BAR,
    PORTFOLIO_SNAPSHOT,
    REGIME_STATE,
    RISK_BREAKER,
    SIZING_TARGET,
)
from tm_common.events import BarClosed, Envelope
from tm_common.events.orders import FundingSettled, OrderFilled
from tm_common.events.portfolio import PortfolioSnapshotted, PositionView
from tm_common.events.risk import BreakerStateChanged
from tm_common.events.signals import PositionSized, RegimeDetected

H4 = 4 * 3_600_000
T0 = 1_738_195_200_000           # 2025-01-30T00:00:00Z: the run crosses into February
N = 24                           # bars per instrument (4 days)
PRICES = {"BTCUSDT": 100.0, "ETHUSDT": 50.0}


def _env(body, key: str, n: int) -> Envelope:
    return Envelope.root(body, key=key, correlation_id=key, ts_event_ns=n, ts_init_ns=n)


def price(inst: str, i: int) -> D:
    return D(str(PRICES[inst] * (1 + 0.01 * i)))            # rises 1 % of the start per bar


def synthetic_run() -> RunRecord:
    """BTC: long 1 from bar 2 to bar 10 (fills at the bar's open time); ETH: short 2 from bar
    4, still open at the end; funding on both; the breaker opens at bar 6 and closes at bar 12."""
    streams: dict[str, list[Envelope]] = {s: [] for s in (MD_BAR, REGIME_STATE, SIZING_TARGET,
                                                          EXEC_REPORT, RISK_BREAKER,
                                                          PORTFOLIO_SNAPSHOT)}
    k = 0

    def put(stream: str, body, key: str) -> None:
        nonlocal k
        k += 1
        streams[stream].append(_env(body, f"{key}:{k}", k))
    fills = {(2, "BTCUSDT"): ("Buy", D(1)), (10, "BTCUSDT"): ("Sell", D(1)),
             (4, "ETHUSDT"): ("Sell", D(2))}
    cash, btc, eth = D(10000), D(0), D(0)
    peak = cash
    for i in range(N):
        t = T0 + i * H4
        for inst in PRICES:
            p = price(inst, i)
            put(MD_BAR, BarClosed(instrument=inst, open_time_ms=t, close_time_ms=t + H4 - 1,
                                  open=p, high=p, low=p, close=p, volume=D(1), source="replay"),
                inst)
            put(REGIME_STATE, RegimeDetected(instrument=inst, bar_time_ms=t,
                                             label="Bull" if i < 12 else "Bear",
                                             probabilities=(0.7, 0.1, 0.1, 0.1), volatility=0.01,
                                             kelly_fraction=0.5), inst)
            put(SIZING_TARGET, PositionSized(instrument=inst, bar_time_ms=t, target_fraction=0.1,
                                             tier="BLENDED" if i % 3 else "FLAT", reason="test"),
                inst)
            if (i, inst) in fills:
                side, q = fills[(i, inst)]
                fee = q * p * D("0.001")
                put(EXEC_REPORT, OrderFilled(intent_id=f"i{i}", order_link_id=f"l{i}{inst}",
                                             order_id="o", exec_id=f"e{i}{inst}", instrument=inst,
                                             side=side, qty=q, price=p, fee=fee,
                                             exec_time_ms=t), inst)
                signed = q if side == "Buy" else -q
                cash -= signed * p + fee
                if inst == "BTCUSDT":
                    btc += signed
                else:
                    eth += signed
        if i == 8:                                    # funding at 00:00 of Feb 1st-ish
            for inst, q in (("BTCUSDT", btc), ("ETHUSDT", eth)):
                pay = q * price(inst, i) * D("0.0001")
                put(EXEC_REPORT, FundingSettled(instrument=inst, settle_time_ms=t,
                                                rate=D("0.0001"), position_qty=q,
                                                mark_price=price(inst, i), payment=pay), inst)
                cash -= pay
        if i in (6, 12):
            put(RISK_BREAKER, BreakerStateChanged(
                from_state="CLOSED" if i == 6 else "OPEN", to_state="OPEN" if i == 6 else "CLOSED",
                trigger="drawdown" if i == 6 else "recovered", reason="test", at_ms=t + H4), "b")
        pos = tuple(PositionView(instrument=inst, qty=q, avg_price=price(inst, 0),
                                 mark_price=price(inst, i), unrealised_pnl=D(0))
                    for inst, q in (("BTCUSDT", btc), ("ETHUSDT", eth)) if q)
        equity = cash + btc * price("BTCUSDT", i) + eth * price("ETHUSDT", i)
        peak = max(peak, equity)
        put(PORTFOLIO_SNAPSHOT, PortfolioSnapshotted(
            bar_time_ms=t, equity=equity, cash=cash, realised_pnl=D(0), unrealised_pnl=D(0),
            fees=D(0), funding=D(0), peak_equity=peak, drawdown=float((peak - equity) / peak),
            positions=pos), "snap")
    return RunRecord(streams=streams, dead_letters={})
