"""``tm status``: ask each supervised service for ``GET /status`` and show one table.

The ``/status`` document is :meth:`tm_common.service.runtime.ServiceRuntime.status`: ``handled``
(int), ``last_event`` ({``type``, ``handled_at_ns``, ...} or null) and ``streams``
({stream: {``lag``, ``pending``}}). Missing fields show as ``-``: a service that answers with
less still gets a row.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, cast

import httpx
from rich.console import JustifyMethod
from rich.table import Table


@dataclass
class ServiceStatus:
    """One row of ``tm status``. ``up``: ``/status`` answered 200 within the timeout."""

    name: str
    pid: int | None
    port: int | None
    process: str  # running | restarting | stopped (the supervisor's view)
    restarts: int
    up: bool = False
    error: str | None = None
    last_event: str | None = None
    handled: int | None = None
    lag: int | None = None
    pending: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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


async def _fetch_one(client: httpx.AsyncClient, row: ServiceStatus, host: str) -> None:
    if row.port is None:
        row.error = "no port"
        return
    try:
        r = await client.get(f"http://{host}:{row.port}/status")
    except httpx.HTTPError as e:
        row.error = type(e).__name__
        return
    if r.status_code != 200:
        row.error = f"HTTP {r.status_code}"
        return
    row.up = True
    try:
        doc = r.json()
    except ValueError:
        row.error = "not JSON"
        return
    if isinstance(doc, dict):
        for k, v in summarize(doc).items():
            setattr(row, k, v)


def collect(state: dict[str, Any], names: list[str] | None = None, *, host: str = "127.0.0.1",
            timeout_s: float = 1.0) -> list[ServiceStatus]:
    """Rows for the processes in a supervisor state document, ``/status`` fetched concurrently."""
    rows = [ServiceStatus(name=n, pid=p.get("pid"), port=p.get("port"),
                          process=p.get("status", "?"), restarts=int(p.get("restarts", 0)))
            for n, p in state.get("processes", {}).items() if names is None or n in names]

    async def fetch_all() -> None:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            await asyncio.gather(*(_fetch_one(client, r, host) for r in rows))

    asyncio.run(fetch_all())
    return rows


def render(rows: list[ServiceStatus]) -> Table:
    """The rich table: service, pid, port, up/down, last event, handled, lag, pending, restarts."""
    t = Table(title="Trade-Matrix services")
    t.add_column("service", no_wrap=True)
    for col, justify in (("pid", "right"), ("port", "right"), ("up", "left"),
                         ("last event", "left"), ("handled", "right"), ("lag", "right"),
                         ("pending", "right"), ("restarts", "right")):
        t.add_column(col, justify=cast(JustifyMethod, justify))

    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    for r in rows:
        if r.up:
            state = "[green]up[/]"
        elif r.process == "running":
            state = f"[yellow]down[/] ({r.error or 'no /status'})"
        else:
            state = f"[red]down[/] ({r.process})"
        t.add_row(r.name, cell(r.pid), cell(r.port), state, cell(r.last_event), cell(r.handled),
                  cell(r.lag), cell(r.pending), str(r.restarts))
    return t
