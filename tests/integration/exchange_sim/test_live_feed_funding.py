"""The paper venue (``TM_SIM_FEED=live``) over HTTP with hourly funding: rates pushed to
``POST /sim/funding`` before the bar that holds them settle when that bar is pushed, each at its
own time, on the position held through the bar (an order through pybit), at the mark then.
Before, a rate waited for a bar closing at exactly its time, which never comes for an hourly
one: it stayed pending, never paid."""

from __future__ import annotations

from decimal import Decimal

from tm_common.history import BAR_INTERVAL_MS
from tm_common.testing.sim import run_sim

T0 = 1_735_689_600_000            # 2025-01-01 00:00 UTC
HOUR_MS = 3600 * 1000


def _bar(open_ms: int, close: str) -> dict:
    c = Decimal(close)
    return {"symbol": "BTCUSDT", "open_time_ms": open_ms, "open": close,
            "high": str(c * Decimal("1.01")), "low": str(c * Decimal("0.99")), "close": close}


def test_hourly_rates_settle_at_their_own_times_when_their_bar_arrives(tmp_path):
    with run_sim(tmp_path, TM_SIM_FEED="live", TM_SIM_SLIPPAGE_BPS="0") as venue:
        venue.post("/sim/bars", {"bars": [_bar(T0, "100000")]})            # closes 04:00
        venue.session().place_order(category="linear", symbol="BTCUSDT", side="Buy",
                                    orderType="Market", qty="0.1")
        hours = [T0 + BAR_INTERVAL_MS + k * HOUR_MS for k in (1, 2, 3, 4)]  # 05:00 .. 08:00
        pushed = venue.post("/sim/funding", {"rates": [
            {"symbol": "BTCUSDT", "settle_time_ms": t, "rate": "0.0001"} for t in hours]})
        assert pushed["live"]["funding_pending"] == 4
        taken = venue.post("/sim/bars", {"bars": [_bar(T0 + BAR_INTERVAL_MS, "101000")]})
        assert taken["live"]["funding_pending"] == 0 and taken["live"]["funding_settled"] == 4
        fund = [e for e in venue.get("/sim/executions")["list"] if e["execType"] == "Funding"]
        assert [(int(f["execTime"]), Decimal(f["execPrice"]), Decimal(f["execFee"]))
                for f in fund] == [
            (hours[0], Decimal(100000), Decimal("1")), (hours[1], Decimal(100000), Decimal("1")),
            (hours[2], Decimal(100000), Decimal("1")),           # 0.1 x 100000 x 1e-4
            (hours[3], Decimal(101000), Decimal("1.01"))]        # at the 08:00 close
