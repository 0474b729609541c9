"""What the chaos drill compares: a run's outcome, collected from the venue and the streams, and
the invariants between a clean run and a run with kills (ARCHITECTURE §9: 1, 2 and 4).

:func:`venue_view` reads the simulator (every venue order and execution, positions, wallet) while
it still runs; :func:`bus_view` reads the namespace's streams after the mesh stopped: every entry
(ids and bodies, not creation times), every consumer group's lag and pending, every dead letter.
:func:`compare` returns one line per broken check (empty = all hold).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tm_common.bus.redis import RedisStreamsBus
from tm_common.bus.streams import ALL_STREAMS, EXEC_VENUE, dlq
from tm_common.testing.redis import delete_namespace  # noqa: F401 - chaos deletes a run's keys

from tm_app.record import RunRecord

# exec.venue holds what the executor's WebSocket and poller happened to observe, and when: it
# is an internal feed whose content depends on timing (its effects reach exec.report once).
NONDETERMINISTIC = frozenset({EXEC_VENUE})
# Measurements of the run itself, not facts of the market or the account.
VOLATILE = frozenset({"inference_us"})
ENTRY_KEYS = ("type", "event_id", "correlation_id", "causation_id", "ts_event_ns", "body")


@dataclass
class RunView:
    """One run's outcome. ``entries``: per stream, (type, event_id, correlation_id,
    causation_id, ts_event_ns, body) of every entry in stream order."""

    orders: list[dict] = field(default_factory=list)          # venue orders, creation order
    executions: list[dict] = field(default_factory=list)
    positions: dict[str, tuple[str, str, str]] = field(default_factory=dict)   # side, size, avg
    wallet: dict[str, str] = field(default_factory=dict)
    entries: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    groups: list[dict] = field(default_factory=list)           # stream, name, lag, pending
    dead_letters: list[dict] = field(default_factory=list)     # stream, type, corr, reason
    trading: dict[str, Any] = field(default_factory=dict)      # RunRecord.trading_view()
    final_equity: str | None = None
    final_positions: dict[str, str] = field(default_factory=dict)
    secs: float = 0.0
    restarts: dict[str, int] = field(default_factory=dict)


def wait_idle(redis_url: str, namespace: str, *, quiet_s: float = 1.0,
              timeout_s: float = 120.0, poll: Callable[[], Any] | None = None) -> list[str]:
    """Wait until every consumer group has lag 0 and pending 0 for ``quiet_s``; returns what is
    still busy at ``timeout_s`` (empty = idle). ``poll`` runs on every check (the supervisor's,
    so that a service killed just before the end is restarted)."""
    async def busy() -> list[str]:
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            return await bus.busy_groups(ALL_STREAMS)
        finally:
            await bus.close()
    deadline, idle_since = time.monotonic() + timeout_s, None
    while True:
        if poll is not None:
            poll()
        b = asyncio.run(busy())
        now = time.monotonic()
        if b:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= quiet_s:
            return []
        if now > deadline:
            return b
        time.sleep(0.2)


def venue_view(sim_url: str, api_key: str, api_secret: str, view: RunView) -> None:
    """Fill ``view`` from the simulator: /sim/orders, /sim/executions, /sim/account and the
    signed /v5/position/list (pybit, as the executor calls it)."""
    with httpx.Client(base_url=sim_url, timeout=30) as c:
        view.orders = c.get("/sim/orders").raise_for_status().json()["list"]
        view.executions = c.get("/sim/executions").raise_for_status().json()["list"]
        acct = c.get("/sim/account").raise_for_status().json()
    view.wallet = {k: acct.get(k, "") for k in ("totalEquity", "totalWalletBalance",
                                                 "totalPerpUPL")}
    from pybit.unified_trading import HTTP

    s = HTTP(testnet=False, api_key=api_key, api_secret=api_secret, max_retries=1)
    s.endpoint = sim_url
    rows = s.get_positions(category="linear", settleCoin="USDT")["result"]["list"]
    view.positions = {r["symbol"]: (r["side"], r["size"], r["avgPrice"]) for r in rows}


def bus_view(redis_url: str, namespace: str, record: RunRecord, view: RunView) -> None:
    """Fill ``view`` from the namespace's streams (call after the mesh stopped)."""
    async def go():
        bus = RedisStreamsBus(redis_url, prefix=namespace)
        try:
            for s in ALL_STREAMS:
                rows = await bus.entries(s, 10_000_000)
                view.entries[s] = [tuple(f.get(k, "") for k in ENTRY_KEYS) for _, f in rows]
                for g in await bus.group_info(s):
                    view.groups.append({"stream": s, "name": g["name"], "lag": g["lag"],
                                        "pending": g["pending"]})
                for _, f in await bus.entries(dlq(s), 100_000):
                    view.dead_letters.append({"stream": s, "type": f.get("type", "?"),
                                              "correlation_id": f.get("correlation_id", ""),
                                              "group": f.get("dlq_group", ""),
                                              "reason": f.get("dlq_reason", "")})
        finally:
            await bus.close()
    asyncio.run(go())
    view.trading = record.trading_view()
    snaps = record.snapshots
    if snaps:
        view.final_equity = str(snaps[-1].equity)
        view.final_positions = {p.instrument: str(p.qty) for p in snaps[-1].positions}


# -- the checks ------------------------------------------------------------------------------
def own_checks(v: RunView, label: str) -> list[str]:
    """Invariants of one run on its own: no duplicate orderLinkId at the venue, no duplicate
    event in any stream, every group drained (lag 0, pending 0)."""
    out = []
    dup = {k: n for k, n in Counter(o["orderLinkId"] for o in v.orders).items() if n > 1}
    if dup:
        out.append(f"{label}: duplicate orderLinkId at the venue: "
                   + ", ".join(f"{k} ×{n}" for k, n in sorted(dup.items())[:5]))
    for s, rows in v.entries.items():
        if s in NONDETERMINISTIC:
            continue
        d = [k for k, n in Counter(r[1] for r in rows).items() if n > 1]
        if d:
            out.append(f"{label}: {len(d)} event(s) published twice on {s} (e.g. {d[0]})")
    busy = [g for g in v.groups if g["lag"] or g["pending"]]
    if busy:
        out.append(f"{label}: consumer groups not drained: " + "; ".join(
            f"{g['stream']}/{g['name']} lag={g['lag']} pending={g['pending']}" for g in busy))
    return out


def _dlq_key(d: dict) -> tuple:
    return d["stream"], d["group"], d["type"], d["correlation_id"]


def compare(clean: RunView, chaos: RunView) -> tuple[list[str], list[str]]:
    """(one line per broken invariant, notes) between a clean run and a chaos run of the same
    window. Streams are compared as facts (:func:`_facts`): the order of a bar's events across
    instruments may differ with timing and is a note; what the venue saw is compared in order."""
    out = own_checks(clean, "clean run") + own_checks(chaos, "chaos run")
    notes: list[str] = []
    if chaos.orders != clean.orders:
        out.append("venue orders differ: " + _first_diff(clean.orders, chaos.orders,
                                                          "orderLinkId"))
    if chaos.executions != clean.executions:
        out.append("venue executions differ: " + _first_diff(clean.executions,
                                                              chaos.executions, "execId"))
    if chaos.positions != clean.positions:
        out.append(f"venue positions differ: clean {clean.positions}, chaos {chaos.positions}")
    if chaos.wallet != clean.wallet:
        out.append(f"venue wallet differs: clean {clean.wallet}, chaos {chaos.wallet}")
    if (chaos.final_equity, chaos.final_positions) != (clean.final_equity, clean.final_positions):
        out.append(f"final portfolio differs: clean equity {clean.final_equity} "
                   f"{clean.final_positions}, chaos equity {chaos.final_equity} "
                   f"{chaos.final_positions}")
    for key in ("orders", "fills", "equity", "tiers", "regimes"):
        a, b = clean.trading.get(key, []), chaos.trading.get(key, [])
        if a != b:
            out.append(f"{key} differ: {_first_diff(a, b)}")
    for s in ALL_STREAMS:
        if s in NONDETERMINISTIC:
            continue
        a, b = _facts(clean.entries.get(s, [])), _facts(chaos.entries.get(s, []))
        if sorted(a) != sorted(b):
            ca, cb = Counter(a), Counter(b)
            lost, extra = sum((ca - cb).values()), sum((cb - ca).values())
            out.append(f"stream {s} differs from the clean run ({len(a)} vs {len(b)} events: "
                       f"{lost} missing, {extra} extra; e.g. "
                       f"{_short(next(iter(ca - cb), None))} vs {_short(next(iter(cb - ca), None))})")
        elif a != b:
            notes.append(f"{s}: the same events as the clean run in another order")
    explained = Counter(_dlq_key(d) for d in clean.dead_letters)
    for d in chaos.dead_letters:
        k = _dlq_key(d)
        if explained[k] > 0:
            explained[k] -= 1                    # the same dead letter in the clean run
            continue
        out.append(f"dead letter on {d['stream']} ({d['group']}, {d['type']} "
                   f"{d['correlation_id']}): {d['reason'][:200]}")
    return out, notes


def _facts(rows: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """An entry as a fact: type, correlation id, market time and body, without the event and
    causation ids (a join's output is caused by whichever input completed it, which depends on
    timing) and without measurements of the run itself (``VOLATILE``)."""
    out: list[tuple[str, ...]] = []
    for typ, _eid, corr, _cause, ts_event, body in rows:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = body
        if isinstance(doc, dict):
            doc = {k: v for k, v in doc.items() if k not in VOLATILE}
        out.append((typ, corr, ts_event, json.dumps(doc, sort_keys=True)))
    return out


def _first_diff(a: list, b: list, key: str | None = None) -> str:
    if len(a) != len(b):
        head = f"{len(a)} vs {len(b)}"
    else:
        head = f"{len(a)} each"
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            if isinstance(x, dict) and isinstance(y, dict):
                fields = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
                name = f" {key}={x.get(key)}" if key else ""
                return (f"{head}; first difference at #{i}{name}: "
                        + ", ".join(f"{f} {x.get(f)!r} vs {y.get(f)!r}" for f in fields[:4]))
            return f"{head}; first difference at #{i}: {_short(x)} vs {_short(y)}"
    return f"{head}; one is a prefix of the other"


def _short(x: Any, n: int = 240) -> str:
    t = repr(x)
    return t if len(t) <= n else t[:n] + "…"
