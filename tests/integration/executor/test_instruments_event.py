"""The venue changes a qtyStep (and starts a delisting): the executor's instruments refresh publishes
``InstrumentsChanged`` on ``exec.report``, risk takes it through ``set_instruments`` (before its
own daily reload) and sizes with the new step. Real sim (HTTP), real Redis, both services
in-process on one bus."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import EXEC_REPORT
from tm_executor.app import ExecutorService
from tm_risk.app import build as build_risk
from tm_risk.config import RiskSettings
from tm_risk.domain.sizing import target_qty

from .conftest import executor_settings, wait_async


async def test_a_changed_qty_step_reaches_risk_as_an_event(sim, redis_url, namespace):
    info = sim.get("/v5/market/instruments-info", category="linear", symbol="BTCUSDT")
    original = info["result"]["list"][0]
    assert original["lotSizeFilter"]["qtyStep"] == "0.001"
    changed = copy.deepcopy(original)
    changed["lotSizeFilter"].update(qtyStep="0.01", minOrderQty="0.01")
    changed["status"] = "Delivering"                # and the venue starts delisting it

    ex = ExecutorService(executor_settings(sim, redis_url, namespace, instruments_refresh_s=0.3))
    risk_parts = build_risk(RiskSettings(
        redis_url=redis_url, namespace=namespace, consumer_name="risk-0", read_block_ms=100,
        venue_rest_url=sim.url, instruments_refresh_s=0, lag_poll_interval_s=0.5,
        mode="replay"), bus=RedisStreamsBus(redis_url, prefix=namespace))
    risk = risk_parts.handlers["handler"]
    bus = RedisStreamsBus(redis_url, prefix=namespace)
    ex_rt, risk_rt = ex.runtime(), risk_parts.runtime()
    await risk_rt.start()
    await ex_rt.start()
    try:
        await wait_async(lambda: _true(ex.preflight.passed), 20, "executor preflight")
        await wait_async(lambda: _true(risk.instruments_ready()[0]), 20, "risk's filters")
        lot = risk.params.instruments["BTCUSDT"]
        # 10,500 USDT x 10 % at 16,500: 0.0636 BTC, rounded down to the step
        assert target_qty(0.1, Decimal(10_500), Decimal(16_500), lot) == Decimal("0.063")

        assert sim.post("/sim/instruments", {"list": [changed]}) == {"replaced": ["BTCUSDT"]}

        async def event() -> list[dict]:
            return [json.loads(f["body"]) for _, f in await bus.entries(EXEC_REPORT, 1000)
                    if f["type"] == "instruments.changed"]
        got = await wait_async(event, 20, "InstrumentsChanged on exec.report")
        assert len(got) == 1 and got[0]["changes"] == {
            "BTCUSDT": "qty_step 0.001→0.01, min_order_qty 0.001→0.01, status Trading→Delivering"}
        assert [i["symbol"] for i in got[0]["instruments"]] == ["BTCUSDT"]
        assert ex.preflight.specs["BTCUSDT"].qty_step == Decimal("0.01")   # the executor too

        await wait_async(lambda: _true(risk.params.instruments["BTCUSDT"].qty_step
                                       == Decimal("0.01")), 20, "risk took the event")
        assert risk.instruments_source.startswith("event from executor")
        lot = risk.params.instruments["BTCUSDT"]
        assert target_qty(0.1, Decimal(10_500), Decimal(16_500), lot) == Decimal("0.06")
        assert lot.status == "Delivering"           # the delisting rule now holds it flat
    finally:
        await ex_rt.stop()
        await risk_rt.stop()
        await bus.close()
        sim.post("/sim/instruments", {"list": [original]})       # the session's sim, as it was


async def _true(v: object) -> bool:
    return bool(v)


def test_unknown_or_malformed_instruments_are_refused_by_the_sim(sim):
    import httpx

    r = httpx.post(f"{sim.url}/sim/instruments", json={"list": [{"symbol": "XRPUSDT"}]})
    assert r.status_code == 400 and "XRPUSDT" in r.text
    entry = sim.get("/v5/market/instruments-info", category="linear",
                    symbol="ETHUSDT")["result"]["list"][0]
    r = httpx.post(f"{sim.url}/sim/instruments", json={"list": [{**entry, "symbol": "XRPUSDT"}]})
    assert r.status_code == 400 and "does not list ['XRPUSDT']" in r.text
