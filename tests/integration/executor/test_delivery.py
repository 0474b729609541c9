"""A delisting the venue carries out: at the instrument's ``deliveryTime`` the venue closes the
position itself (an execution of type ``Delivery``, no order of ours), and the executor
publishes it as a fill on the first bar closing at or after that time, of any instrument (the
delisted one may send none), so the portfolio books its realised PnL rather than losing it to a
reconciled position. The venue is the exchange sim over HTTP (pybit), with a history of its
own; the executor is a real process."""

from __future__ import annotations

from decimal import Decimal

from tm_common.bus.streams import MD_BAR
from tm_common.testing.instrument_history import (
    UNSHIPPED_SYMBOL,
    unshipped_spec,
    write_history,
    write_instrument,
)
from tm_common.testing.sim import QUIET_FAULTS, run_sim

from .conftest import BAR_MS, START_MS, bar_envelope, on_bus, report_bodies, wait_sync

SYMBOL = UNSHIPPED_SYMBOL
OTHER = "BTCUSDT"


def test_the_venue_s_delivery_is_published_as_a_fill(tmp_path, redis_url, namespace,
                                                      executor_factory):
    delivery_ms = START_MS + 3 * BAR_MS                                # 12:00, a bar close
    history = tmp_path / "history"
    write_history(history, start_ms=START_MS, n_bars=60)
    write_history(history, OTHER, start_ms=START_MS, n_bars=60, start_price=20000.0)
    write_instrument(history, unshipped_spec(delivery_time_ms=delivery_ms))
    with run_sim(tmp_path, TM_SIM_SYMBOLS=f'["{SYMBOL}", "{OTHER}"]',
                 TM_SIM_HISTORY_DIR=str(history)) as sim:
        sim.post("/sim/faults", {**QUIET_FAULTS, "seed": 7})
        sim.post("/sim/reset", {"start_ms": START_MS, "initial_balance": "100000"})
        executor = executor_factory(sim, redis_url, namespace, TM_SYMBOLS=f"{SYMBOL},{OTHER}")
        executor.wait_for(lambda: executor.status()["extra"]["reconciliation"]["runs"] >= 1,
                          what="the start-up reconciliation")
        sim.session().place_order(category="linear", symbol=SYMBOL, side="Buy",
                                  orderType="Market", qty="100")         # at 04:00

        def bar_closing(close_ms: int, symbol: str) -> None:
            sim.advance((close_ms - sim.get("/sim/clock")["now_ms"]) // BAR_MS)
            on_bus(lambda bus: bus.publish(MD_BAR, bar_envelope(symbol, close_ms - BAR_MS)),
                   redis_url, namespace)

        def fills() -> list[dict]:
            return [b for t, b in on_bus(report_bodies, redis_url, namespace)
                    if t == "order.filled"]

        bar_closing(START_MS + 2 * BAR_MS, SYMBOL)                        # before: nothing
        bar_closing(delivery_ms, OTHER)           # the delisted symbol sends no bar this late
        (venue,) = [r for r in sim.get("/sim/executions")["list"] if r["execType"] == "Delivery"]
        assert int(venue["execTime"]) == delivery_ms and venue["side"] == "Sell"
        (fill,) = wait_sync(lambda: fills() or None, timeout_s=20, what="the delivery fill")
        assert fill["exec_id"] == venue["execId"] and fill["side"] == "Sell"
        assert fill["instrument"] == SYMBOL
        assert Decimal(fill["qty"]) == 100 and fill["exec_time_ms"] == delivery_ms
        assert Decimal(fill["price"]) == Decimal(venue["execPrice"])
        assert fill["intent_id"] == f"delivery:{SYMBOL}:{delivery_ms}"
        assert not sim.get("/v5/market/instruments-info", category="linear",
                           symbol=SYMBOL)["result"]["list"]               # as Bybit: Trading only
        info = sim.get("/v5/market/instruments-info", category="linear", symbol=SYMBOL,
                       status="Closed")
        assert info["result"]["list"][0]["status"] == "Closed"
        assert "executor.position_delivered" in executor.logs()
        # a restart after the delisting: the venue refuses leverage on the closed symbol and
        # lists it only by status; the preflight passes over it and the executor is ready
        executor.stop()
        again = executor_factory(sim, redis_url, namespace, TM_SYMBOLS=f"{SYMBOL},{OTHER}")
        again.wait_for(lambda: again.get("/readyz").status_code == 200,
                       what="the restarted executor ready")
        steps = again.status()["extra"]["preflight"]["steps"]
        assert steps[f"leverage:{SYMBOL}"] == f"skipped: {SYMBOL} is Closed", steps
