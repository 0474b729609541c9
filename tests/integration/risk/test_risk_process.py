"""The risk service as a real process: admin auth, manual trip/reset through the command stream,
orders from real Redis streams, the live stale-data watchdog, and no secret in logs or /status."""

from __future__ import annotations

import signal

import tm_risk.commands  # noqa: F401 - registers breaker.command_issued for decoding
from tm_common.bus.streams import (
    MD_BAR,
    PORTFOLIO_SNAPSHOT,
    RISK_BREAKER,
    RISK_ORDER,
    RISK_REJECTION,
    SIZING_TARGET,
)
from tm_common.events import OrderApproved
from tm_risk.testing import EQUITY, history, snapshot_env, target_env


def _order_flow(svc, streams, wait) -> OrderApproved:
    """Bars, a snapshot and a target through real Redis streams → one approved order."""
    bars, closes = history(80)
    streams.publish(MD_BAR, bars)
    streams.publish(PORTFOLIO_SNAPSHOT, [snapshot_env(79, EQUITY)])
    last = {s: bars[-1].body.open_time_ms for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")}
    # the consumer interleaves streams in batches: wait until every bar and the snapshot are in
    wait(lambda: (x := svc.get("/status").json()["extra"])["equity"] == str(EQUITY)
         and x["last_bar_open_ms"] == last, 15, "bars and snapshot handled")
    # the service joins bar 79's targets: one per symbol (BTC and SOL stay flat)
    streams.publish(SIZING_TARGET, [target_env(s, 79, 0.25 if s == "ETHUSDT" else 0.0)
                                    for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")])
    (o,) = wait(lambda: streams.bodies(RISK_ORDER) or streams.bodies(RISK_REJECTION), 15,
                "an approved order")
    assert isinstance(o, OrderApproved), o
    assert o.instrument == "ETHUSDT" and o.side == "Buy" and not o.reduce_only
    assert o.qty == (EQUITY / 4 / closes["ETHUSDT"][-1]).quantize(o.qty.__class__("0.01"), "ROUND_DOWN")
    return o


def test_orders_then_admin_auth_and_manual_trip_reset(risk_process, streams, secret, wait):
    SECRET = secret
    svc = risk_process()
    order = _order_flow(svc, streams, wait)
    for kw in ({}, {"token": "wrong-token"}, {"header": f"Basic {SECRET}"}, {"header": "Bearer"},
               {"token": SECRET + "x"}):
        r = svc.post("/breaker/trip", **kw)
        assert r.status_code == 401, (kw, r.text)
        assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    assert svc.post("/breaker/reset", token="nope").status_code == 401
    assert streams.bodies(RISK_BREAKER) == []

    r = svc.post("/breaker/trip", token=SECRET, json={"reason": "drill"})
    assert r.status_code == 200, r.text
    assert r.json()["applied"] is True and r.json()["state"] == "OPEN"
    (b,) = streams.bodies(RISK_BREAKER)
    assert (b.from_state, b.to_state, b.trigger, b.reason) == ("CLOSED", "OPEN", "manual_trip",
                                                              "trip by admin: drill")
    _, flat = streams.bodies(RISK_ORDER)                 # the manual trip flattens the position
    assert flat.reduce_only and flat.qty == order.qty and flat.side == "Sell" and flat.target_qty == 0
    r = svc.post("/breaker/trip", token=SECRET)
    assert r.status_code == 409 and r.json()["state"] == "OPEN"
    assert svc.post("/breaker/trip", token=SECRET, content=b"{not json").status_code == 400

    r = svc.post("/breaker/reset", token=SECRET)
    assert r.status_code == 400 and "needs a reason" in r.json()["detail"]
    r = svc.post("/breaker/reset", token=SECRET, json={"reason": "drill over"})
    assert r.status_code == 200 and r.json()["state"] == "CLOSED"
    assert [x.to_state for x in streams.bodies(RISK_BREAKER)] == ["OPEN", "CLOSED"]

    status = svc.get("/status")
    assert status.json()["extra"]["breaker"]["state"] == "CLOSED"
    metrics = svc.get("/metrics").text
    assert "tm_risk_breaker_state 0.0" in metrics
    assert 'tm_risk_breaker_transitions_total{from_state="CLOSED",to_state="OPEN",trigger="manual_trip"} 1.0' \
        in metrics
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(20) == 0
    logs = svc.logs()
    assert "risk.admin_command" in logs and "risk.admin_denied" in logs
    for text in (status.text, metrics, logs):
        assert SECRET not in text and "wrong-token" not in text


def test_live_watchdog_trips_on_wall_clock_when_bars_stop(risk_process, streams, wait):
    svc = risk_process(TM_RISK_STALE_CHECK_INTERVAL_S="0.2")
    bars, _ = history(3)                         # bars of 2023: stale by wall time
    streams.publish(MD_BAR, bars)
    (b,) = wait(lambda: streams.bodies(RISK_BREAKER), 15, "watchdog trip")
    assert (b.to_state, b.trigger) == ("OPEN", "stale_data")
    assert svc.get("/status").json()["extra"]["breaker"]["state"] == "OPEN"
