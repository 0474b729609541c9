"""``python -m tm_risk`` reads its lot filters from the venue over HTTP (the exchange simulator's
public ``/v5/market/instruments-info``), including a symbol the project does not ship (its filters
recorded beside its history), refuses to be ready for a symbol the venue does not list, and picks
up the venue's new filters on its refresh, with no restart."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

from tm_common.testing.instrument_history import (
    UNSHIPPED_SYMBOL,
    unshipped_spec,
    write_history,
    write_instrument,
)
from tm_common.testing.redis import free_port
from tm_common.testing.sim import run_sim

SYM = UNSHIPPED_SYMBOL
START_MS = 1_672_531_200_000


def _history(tmp_path, **overrides):
    d = tmp_path / "history"
    write_history(d, start_ms=START_MS, n_bars=60)
    write_instrument(d, unshipped_spec(**overrides))
    return d


def _filters(proc) -> dict:
    return proc.get("/status").json()["extra"]["instruments"]


def _gauge(proc, name: str) -> float:
    """``name{instrument=SYM}`` on the process's ``/metrics`` (what the alert rules read)."""
    from prometheus_client.parser import text_string_to_metric_families

    return next(s.value for f in text_string_to_metric_families(proc.get("/metrics").text)
                for s in f.samples if s.name == name and s.labels == {"instrument": SYM})


def test_risk_reads_the_venue_s_filters_and_follows_their_change(tmp_path, risk_process, wait):
    history = _history(tmp_path)
    port = free_port()
    sim_env = {"TM_SIM_SYMBOLS": f'["{SYM}"]', "TM_SIM_HISTORY_DIR": str(history)}
    with run_sim(tmp_path, port=port, **sim_env) as sim:
        risk = risk_process(TM_SYMBOLS=SYM, TM_RISK_INSTRUMENTS_FILE=None,
                            TM_RISK_VENUE_REST_URL=sim.url, TM_RISK_INSTRUMENTS_REFRESH_S="1")
        got = _filters(risk)
        assert got["source"] == f"venue {sim.url}"
        assert got["filters"][SYM] == {"qty_step": "1", "min_order_qty": "1",
                                       "max_order_qty": "1000000", "max_mkt_order_qty": "100000",
                                       "min_notional": "5"}
    # the venue changes its filters (a sim restarted on the same address with new ones): risk
    # is told within its refresh and uses them, no restart, one more update counted
    write_instrument(history, unshipped_spec(qty_step=Decimal(10), min_order_qty=Decimal(10),
                                             min_notional=Decimal(20)))
    with run_sim(tmp_path, port=port, **sim_env):
        wait(lambda: _filters(risk)["filters"][SYM]["qty_step"] == "10", 20, "the new qty step")
        assert _filters(risk)["filters"][SYM]["min_notional"] == "20"
        metrics = risk.get("/metrics").text
        assert f'tm_risk_instrument_updates_total{{instrument="{SYM}"}} 2.0' in metrics
        assert "risk.instruments_changed" in risk.logs()
        assert risk.get("/readyz").status_code == 200


def test_a_symbol_the_venue_does_not_list_is_named_and_risk_stays_not_ready(tmp_path,
                                                                           risk_process, wait):
    history = _history(tmp_path)
    with run_sim(tmp_path, TM_SIM_SYMBOLS=f'["{SYM}"]',
                 TM_SIM_HISTORY_DIR=str(history)) as sim:
        risk = risk_process(TM_SYMBOLS=f"{SYM},XRPUSDT", TM_RISK_INSTRUMENTS_FILE=None,
                            TM_RISK_VENUE_REST_URL=sim.url, ready_within_s=None)
        why = f"error: NotReady: no lot filters for XRPUSDT from venue {sim.url}"
        r = wait(lambda: (x := risk.get("/readyz")).json()["checks"]["instruments"] == why
                 and x, 20, "the instruments check naming XRPUSDT")
        assert r.status_code == 503 and r.json()["not_ready"] == ["instruments"]


def test_a_delisting_the_venue_schedules_is_shown_and_logged(tmp_path, risk_process):
    """The venue's instruments-info names a delisting (``deliveryTime``): risk reads it with the
    filters, shows it on ``/status`` and warns in its log, with the time it goes flat from
    (the rule itself: ``tests/unit/risk/test_delisting.py``)."""
    at_ms = START_MS + 30 * 24 * 3600 * 1000                       # 2023-01-31 00:00 UTC
    history = _history(tmp_path, delivery_time_ms=at_ms)
    with run_sim(tmp_path, TM_SIM_SYMBOLS=f'["{SYM}"]', TM_SIM_HISTORY_DIR=str(history)) as sim:
        info = sim.get("/v5/market/instruments-info", category="linear", symbol=SYM)
        assert info["result"]["list"][0]["deliveryTime"] == str(at_ms)
        risk = risk_process(TM_SYMBOLS=SYM, TM_RISK_INSTRUMENTS_FILE=None,
                            TM_RISK_VENUE_REST_URL=sim.url)
        assert _filters(risk)["delistings"] == {SYM: "2023-01-31 00:00 UTC"}
        assert "risk.delisting_scheduled" in risk.logs()
        assert "2023-01-30 00:00 UTC" in risk.logs()               # flat a day before
        tickers = sim.get("/v5/market/tickers", category="linear", symbol=SYM)
        assert tickers["result"]["list"][0]["deliveryTime"] == str(at_ms)
        # what TMInstrumentDelistingScheduled reads (deploy/prometheus/rules)
        assert _gauge(risk, "tm_risk_instrument_delivery_time_seconds") == at_ms / 1000
        assert _gauge(risk, "tm_risk_instrument_trading") == 1


def test_a_listing_the_venue_stops_trading_is_shown_and_logged(tmp_path, risk_process, wait):
    """The venue answers ``status: Delivering`` for a traded symbol (a delisting under way, no
    ``deliveryTime`` given), and only when asked for that status: risk still reads it with the
    filters (a restarted risk would otherwise wait for them for ever), names it on ``/status``
    and warns that the target is flat; back to ``Trading`` on the venue, risk follows on its
    refresh."""
    history = _history(tmp_path, status="Delivering")
    port = free_port()
    sim_env = {"TM_SIM_SYMBOLS": f'["{SYM}"]', "TM_SIM_HISTORY_DIR": str(history)}
    with run_sim(tmp_path, port=port, **sim_env) as sim:
        # as Bybit, the venue lists only Trading instruments unless asked for another status:
        # risk asks for a traded symbol missing from its answer by status
        assert sim.get("/v5/market/instruments-info", category="linear")["result"]["list"] == []
        info = sim.get("/v5/market/instruments-info", category="linear", symbol=SYM,
                       status="Delivering")
        assert info["result"]["list"][0]["status"] == "Delivering"
        risk = risk_process(TM_SYMBOLS=SYM, TM_RISK_INSTRUMENTS_FILE=None,
                            TM_RISK_VENUE_REST_URL=sim.url, TM_RISK_INSTRUMENTS_REFRESH_S="1")
        assert _filters(risk)["not_trading"] == {SYM: "Delivering"}
        assert "risk.instrument_not_trading" in risk.logs() and "flat" in risk.logs()
        assert _gauge(risk, "tm_risk_instrument_trading") == 0      # TMInstrumentNotTrading
    write_instrument(history, unshipped_spec())
    with run_sim(tmp_path, port=port, **sim_env):
        wait(lambda: _filters(risk)["not_trading"] == {}, 20, "the venue trading it again")
        assert _gauge(risk, "tm_risk_instrument_trading") == 1


def test_a_process_flattens_before_a_scheduled_delisting(tmp_path, risk_process, streams, wait):
    """Through real Redis streams: ETHUSDT's delisting is 12 h after bar 79's close, inside the
    day's lead, so a target that would add to the held 10 ETH becomes a reduce-only sale of all
    of it, its reason naming the delisting; BTCUSDT, with no schedule, still opens."""
    from tm_common.bus.streams import MD_BAR, PORTFOLIO_SNAPSHOT, RISK_ORDER, SIZING_TARGET
    from tm_common.instruments import DEFAULT_INSTRUMENTS
    from tm_common.testing.bars import open_ms
    from tm_risk.testing import EQUITY, history, snapshot_env, target_env

    at_ms = open_ms(79) + 4 * 3600 * 1000 + 12 * 3600 * 1000
    specs = {**DEFAULT_INSTRUMENTS,
             "ETHUSDT": replace(DEFAULT_INSTRUMENTS["ETHUSDT"], delivery_time_ms=at_ms)}
    recorded = tmp_path / "instruments-delisting.json"
    recorded.write_text(json.dumps({"retCode": 0, "retMsg": "OK", "result": {
        "category": "linear", "list": [s.info() for s in specs.values()]}}))
    svc = risk_process(TM_RISK_INSTRUMENTS_FILE=str(recorded))
    bars, closes = history(80)
    streams.publish(MD_BAR, bars)
    streams.publish(PORTFOLIO_SNAPSHOT, [snapshot_env(79, EQUITY, {
        "ETHUSDT": ("10", closes["ETHUSDT"][-1])})])
    wait(lambda: svc.get("/status").json()["extra"]["equity"] == str(EQUITY), 15, "the snapshot")
    streams.publish(SIZING_TARGET, [target_env("BTCUSDT", 79, 0.1),
                                    target_env("ETHUSDT", 79, 0.5),
                                    target_env("SOLUSDT", 79, 0.0)])
    orders = wait(lambda: len(x := streams.bodies(RISK_ORDER)) >= 2 and x, 15, "two orders")
    eth = [o for o in orders if o.instrument == "ETHUSDT"]
    btc = [o for o in orders if o.instrument == "BTCUSDT"]
    assert [(o.side, o.qty, o.reduce_only, o.target_qty) for o in eth] == [
        ("Sell", Decimal(10), True, Decimal(0))]
    assert "delisting" in eth[0].reason and ": flat" in eth[0].reason
    assert [o.side for o in btc] == ["Buy"]
    assert "risk.delisting_scheduled" in svc.logs()
