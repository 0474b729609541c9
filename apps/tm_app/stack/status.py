"""``tm status``: ask each supervised service for ``GET /status`` and ``GET /readyz``; show one
table, a summary line, and say (by the exit status) whether everything is ready.

The ``/status`` document is :meth:`tm_common.service.runtime.ServiceRuntime.status`: ``handled``
(int), ``last_event`` ({``type``, ``handled_at_ns``, ...} or null), ``streams``
({stream: {``lag``, ``pending``}}) and the service's ``extra`` (risk: ``breaker.state``). The
``/readyz`` body is ``{"ready", "not_ready": [check, ...], "checks": {check: "ok" | why}}``: a
row's ``reason`` is the first check that is not ok, with its why. Missing fields show as ``-``: a
service that answers with less still gets a row.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text


@dataclass
class ServiceStatus:
    """One row of ``tm status``. ``up``: ``/status`` answered 200 within the timeout;
    ``ready``: ``/readyz`` answered 200; ``reason``: why it is not ready (``None`` when it is)."""

    name: str
    pid: int | None
    port: int | None
    process: str  # running | restarting | stopped (the supervisor's view)
    restarts: int
    up: bool = False
    ready: bool = False
    reason: str | None = None
    error: str | None = None
    last_event: str | None = None
    handled: int | None = None
    lag: int | None = None
    pending: int | None = None
    last_exit: str | None = None   # "exited with N: <last log line>" (the supervisor's record)
    not_ready: dict[str, str] = field(default_factory=dict, repr=False)  # check -> why
    extra: dict[str, Any] = field(default_factory=dict, repr=False)      # /status "extra"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("not_ready", "extra")}


def _sum(values: list[Any]) -> int | None:
    nums = [int(v) for v in values if isinstance(v, (int, float))]
    return sum(nums) if nums else None


def _age(ns: Any) -> str:
    if not isinstance(ns, (int, float)) or ns <= 0:
        return ""
    secs = max(0.0, time.time() - ns / 1e9)
    return f" ({secs:.0f}s ago)" if secs < 120 else f" ({secs / 60:.0f}m ago)"


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """``last_event``/``handled``/``lag``/``pending`` from a ``/status`` document.

    Lag and pending are summed over the consumed streams.
    """
    last = doc.get("last_event")
    last_s: str | None
    if isinstance(last, dict):
        last_s = f"{last.get('type', '?')}{_age(last.get('handled_at_ns') or last.get('ts_init_ns'))}"
    else:
        last_s = str(last) if last else None
    raw_streams = doc.get("streams")
    streams = raw_streams if isinstance(raw_streams, dict) else {}
    per = [v for v in streams.values() if isinstance(v, dict)]
    handled = doc.get("handled")
    return {"last_event": last_s,
            "handled": handled if isinstance(handled, int) else None,
            "lag": doc.get("lag") if isinstance(doc.get("lag"), int) else _sum([v.get("lag") for v in per]),
            "pending": (doc.get("pending") if isinstance(doc.get("pending"), int)
                        else _sum([v.get("pending") for v in per]))}


def _why(text: Any) -> str:
    """A check's why, without the ``error: NotReady:`` wrapping of a raised reason."""
    s = str(text).strip()
    for prefix in ("error: ", "NotReady: "):
        s = s.removeprefix(prefix)
    return s or "not ready"


def not_ready_checks(body: Any) -> dict[str, str]:
    """check → why for every check of a ``/readyz`` body that is not ok, in the body's order."""
    if not isinstance(body, dict):
        return {}
    raw_checks, raw_names = body.get("checks"), body.get("not_ready")
    checks: dict[str, Any] = raw_checks if isinstance(raw_checks, dict) else {}
    names: list[Any] = (raw_names if isinstance(raw_names, list)
                        else [k for k, v in checks.items() if v != "ok"])
    return {str(n): _why(checks.get(n, "not ready")) for n in names}


def _get_json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


async def _fetch_one(client: httpx.AsyncClient, row: ServiceStatus, host: str) -> None:
    if row.port is None:
        row.error = row.reason = "no port"
        return
    base = f"http://{host}:{row.port}"
    try:
        r, rz = await asyncio.gather(client.get(f"{base}/status"), client.get(f"{base}/readyz"))
    except httpx.HTTPError as e:
        row.error = type(e).__name__
        row.reason = _down_reason(row)
        return
    if r.status_code == 200:
        row.up = True
        doc = _get_json(r)
        if isinstance(doc, dict):
            for k, v in summarize(doc).items():
                setattr(row, k, v)
            extra = doc.get("extra")
            row.extra = extra if isinstance(extra, dict) else {}
        else:
            row.error = "/status: not JSON"
    else:
        row.error = f"/status: HTTP {r.status_code}"
    body = _get_json(rz)
    row.ready = rz.status_code == 200 and (not isinstance(body, dict) or body.get("ready", True)
                                           is not False)
    if not row.ready:
        row.not_ready = not_ready_checks(body)
        first = next(iter(row.not_ready.items()), None)
        row.reason = (f"{first[0]}: {first[1]}" if first
                      else f"/readyz: HTTP {rz.status_code}")


def _down_reason(row: ServiceStatus) -> str:
    """``restarting: exited with 3: <its last line>``; a process just restarted (running, not
    answering yet) keeps its previous exit: ``not answering (ConnectError); last exited …``."""
    if row.process != "running":
        return f"{row.process}: {row.last_exit}" if row.last_exit else row.process
    base = f"not answering ({row.error})"
    return f"{base}; last {row.last_exit}" if row.last_exit else base


def _last_exit(p: dict[str, Any]) -> str | None:
    code = p.get("last_exit_code")
    if code is None:
        return None
    return f"exited with {code}: {p.get('last_output') or p.get('last_error') or '(no output)'}"


def collect(state: dict[str, Any], names: list[str] | None = None, *, host: str = "127.0.0.1",
            timeout_s: float = 1.0) -> list[ServiceStatus]:
    """Rows for the processes in a supervisor state document, ``/status`` and ``/readyz``
    fetched concurrently."""
    rows = [ServiceStatus(name=n, pid=p.get("pid"), port=p.get("port"),
                          process=p.get("status", "?"), restarts=int(p.get("restarts", 0)),
                          last_exit=_last_exit(p))
            for n, p in state.get("processes", {}).items() if names is None or n in names]

    async def fetch_all() -> None:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            await asyncio.gather(*(_fetch_one(client, r, host) for r in rows))

    asyncio.run(fetch_all())
    return rows


def all_ready(rows: list[ServiceStatus]) -> bool:
    return bool(rows) and all(r.ready for r in rows)


def trading_state(rows: list[ServiceStatus]) -> str | None:
    """What the not-ready services mean for trading, from what they report: ``trading HALTED:
    breaker OPEN`` (risk's ``/status``), ``trading FLAT: <why>`` (the signal service has no
    production model), ``trading STOPPED: <svc> down``; ``None`` when nothing is known to stop
    trading."""
    by = {r.name: r for r in rows}
    risk = by.get("risk")
    breaker = risk.extra.get("breaker") if risk is not None else None
    if isinstance(breaker, dict) and breaker.get("state") == "OPEN":
        return "trading HALTED: breaker OPEN"
    signal = by.get("signal")
    if signal is not None and "model" in signal.not_ready:
        return f"trading FLAT: {signal.not_ready['model']}"
    down = [n for n in ("ingest", "signal", "sizer", "risk", "executor") if n in by and not by[n].up]
    if down:
        return f"trading STOPPED: {', '.join(down)} down"
    if isinstance(breaker, dict) and breaker.get("state") == "HALF_OPEN":
        return "breaker HALF_OPEN (trading at reduced size)"
    return None


def unprotected(rows: list[ServiceStatus]) -> str | None:
    """``no venue stop under BTCUSDT`` when the executor reports positions without the stop
    loss it keeps on the venue (``/status`` ``venue_stops.unprotected``: refused, or failing)."""
    executor = next((r for r in rows if r.name == "executor"), None)
    stops = executor.extra.get("venue_stops") if executor is not None else None
    names = stops.get("unprotected") if isinstance(stops, dict) else None
    if not names or not isinstance(names, list):
        return None
    return f"no venue stop under {', '.join(str(n) for n in names)}"


def external_flows(rows: list[ServiceStatus]) -> str | None:
    """``external flows -40000 USDT`` when the portfolio booked money that moved outside the
    mesh (``/status`` ``transfers``: the venue wallet's differences the executor adopted)."""
    portfolio = next((r for r in rows if r.name == "portfolio"), None)
    total = portfolio.extra.get("transfers") if portfolio is not None else None
    try:
        amount = Decimal(str(total)) if total is not None else Decimal(0)
    except ArithmeticError:
        return None
    return None if amount == 0 else f"external flows {amount.normalize():f} USDT"


def summary_line(rows: list[ServiceStatus]) -> str:
    """``6/8 ready; trading FLAT: no production signal model; not ready: signal, sizer`` (the
    reasons are in the table, and in ``--json``), positions without their venue stop, and the
    money booked as external flows."""
    ready = sum(r.ready for r in rows)
    parts = [f"{ready}/{len(rows)} ready"]
    if (state := trading_state(rows)) is not None:
        parts.append(state)
    if (naked := unprotected(rows)) is not None:
        parts.append(naked)
    if (flows := external_flows(rows)) is not None:
        parts.append(flows)
    others = [r for r in rows if not r.ready]
    if others:
        parts.append("not ready: " + ", ".join(r.name for r in others))
    return "; ".join(parts)


#: Below this console width the reasons go under the table (and pid out of it): 80 columns fit.
WIDE_COLUMNS = 110


def render(rows: list[ServiceStatus], width: int = 80) -> Group:
    """The table (service, pid, port, ready, last event, handled, lag/pending, restarts) for a
    console ``width`` columns wide. At :data:`WIDE_COLUMNS` or more the ready column holds the
    first reason a service is not ready; narrower, the pid column is left out (``--json`` has
    it) and the reasons follow the table, one per line. Every cell folds: nothing is cut."""
    wide = width >= WIDE_COLUMNS
    t = Table(title="Trade-Matrix services")
    cols = [("service", "left", None), ("pid", "right", None), ("port", "right", None),
            ("ready", "left", 2), ("last event", "left", 1), ("handled", "right", None),
            ("lag/pend", "right", None), ("restarts", "right", None)]
    for col, justify, ratio in cols:
        if col != "pid" or wide:
            t.add_column(col, justify=justify, overflow="fold", ratio=ratio)  # type: ignore[arg-type]

    def cell(v: Any) -> str:
        return "-" if v is None else escape(str(v))   # a reason may hold "[Errno 98]"

    reasons = []
    for r in rows:
        word = "[green]ready[/]" if r.ready else ("[yellow]no[/]" if r.up else "[red]down[/]")
        if not r.ready:
            reasons.append(f"  {cell(r.name)} not ready: {cell(r.reason)}")
        state = f"{word}: {cell(r.reason)}" if wide and not r.ready else word
        lag = "-" if r.lag is None and r.pending is None else f"{cell(r.lag)}/{cell(r.pending)}"
        cells = [cell(r.name), cell(r.pid), cell(r.port), state, cell(r.last_event),
                 cell(r.handled), lag, str(r.restarts)]
        t.add_row(*(cells if wide else cells[:1] + cells[2:]))
    if wide or not reasons:
        return Group(t)
    return Group(t, *(Text.from_markup(line) for line in reasons))
