"""`tm status`'s ready column, reasons and summary line, from what the services answer."""

from __future__ import annotations

import re

from rich.console import Console
from tm_app.stack.status import (
    ServiceStatus,
    all_ready,
    not_ready_checks,
    render,
    summary_line,
    trading_state,
)


def row(name: str, *, ready: bool = True, up: bool = True, not_ready: dict | None = None,
        extra: dict | None = None, process: str = "running", **kw) -> ServiceStatus:
    nr = not_ready or {}
    first = next(iter(nr.items()), None)
    return ServiceStatus(name=name, pid=4242, port=8100, process=process, restarts=0, up=up,
                         ready=ready, not_ready=nr, extra=extra or {},
                         reason=kw.pop("reason", f"{first[0]}: {first[1]}" if first else None),
                         **kw)


def test_not_ready_checks_take_the_bodys_order_and_unwrap_raised_reasons():
    body = {"ready": False, "not_ready": ["model", "inputs"],
            "checks": {"redis": "ok", "model": "error: NotReady: no production signal model",
                       "inputs": "not ready"}}
    assert not_ready_checks(body) == {"model": "no production signal model",
                                      "inputs": "not ready"}
    # a body without "not_ready": derived from the checks
    assert not_ready_checks({"checks": {"redis": "timed out after 2.0 s", "x": "ok"}}) == {
        "redis": "timed out after 2.0 s"}
    assert not_ready_checks("garbage") == {}


def test_summary_counts_ready_and_says_why_trading_is_flat():
    rows = [row("ingest"), row("signal", ready=False,
                               not_ready={"model": "no production signal model"}),
            row("sizer", ready=False, not_ready={"policy": "no production rl policy"}),
            row("risk", extra={"breaker": {"state": "CLOSED"}})]
    assert summary_line(rows) == ("2/4 ready; trading FLAT: no production signal model; "
                                  "not ready: signal, sizer")
    assert not all_ready(rows)


def test_an_open_breaker_and_a_dead_service_are_named():
    halted = [row("signal"), row("risk", extra={"breaker": {"state": "OPEN"}})]
    assert trading_state(halted) == "trading HALTED: breaker OPEN"
    assert summary_line(halted) == "2/2 ready; trading HALTED: breaker OPEN"
    down = [row("executor", up=False, ready=False, process="restarting",
                reason="restarting: exited with 3: boom")]
    assert trading_state(down) == "trading STOPPED: executor down"
    everything = [row("ingest"), row("risk", extra={"breaker": {"state": "CLOSED"}})]
    assert summary_line(everything) == "2/2 ready" and all_ready(everything)
    assert not all_ready([])


def test_positions_without_their_venue_stop_are_named():
    stops = {"enabled": True, "unprotected": ["BTCUSDT", "SOLUSDT"]}
    rows = [row("risk", extra={"breaker": {"state": "CLOSED"}}),
            row("executor", extra={"venue_stops": stops})]
    assert summary_line(rows) == "2/2 ready; no venue stop under BTCUSDT, SOLUSDT"
    rows[1] = row("executor", extra={"venue_stops": {**stops, "unprotected": []}})
    assert summary_line(rows) == "2/2 ready"


def test_money_booked_as_external_flows_is_named():
    rows = [row("portfolio", extra={"transfers": "-40000.0000000000"}), row("executor")]
    assert summary_line(rows) == "2/2 ready; external flows -40000 USDT"
    rows[0] = row("portfolio", extra={"transfers": "0"})
    assert summary_line(rows) == "2/2 ready"
    rows[0] = row("portfolio", extra={"transfers": "not a number"})
    assert summary_line(rows) == "2/2 ready"


def _rendered(rows, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(render(rows, width))
    return console.export_text()


def test_the_table_fits_80_columns_and_keeps_every_reason():
    reason = ("restarting: exited with 3: ERROR: [Errno 98] error while attempting to bind on "
              "address ('127.0.0.1', 8106): address already in use")
    rows = [row("exchange_sim", last_event="bar.closed (3s ago)", handled=1234567, lag=-4,
                pending=12),
            row("signal", ready=False, not_ready={"model": "no production signal model"}),
            row("executor", up=False, ready=False, process="restarting", reason=reason)]
    text = _rendered(rows, 80)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80, text
    assert "…" not in text
    assert all(ln.rstrip()[-1] in "│┃┓┩┘" for ln in lines if ln[:1] in "│┃┏┡└"), text
    flat = re.sub(r"\s+", " ", text)
    assert "signal not ready: model: no production signal model" in flat
    assert "[Errno 98]" in flat and "address already in use" in flat   # markup-safe, whole
    assert "1234567" in text and "-4/12" in text
    wide = _rendered(rows, 140)
    assert "no: model: no production signal model" in wide   # the ready column holds it
    assert "4242" in wide                                      # pid, when there is room
