"""The models a run used and their gate results, read from the registry at report time: the
report's ``meta["models"]``.

Shape: ``{"production": {"signal": [...], "regime": [...], "rl": [...]}, "signal_candidate":
{...} | None}``, each model ``{"version", "stage", "instrument", "created_utc", "gate_passed",
"mean_ic", "sharpe", "why", ...}``; or ``{"unavailable": "<why>"}`` when the registry cannot be
read. The candidate is the newest signal model that is not production (the one the gates judged
last); a shadow run's candidate is named by the caller instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tm_app.report.trades import utc_iso

KINDS = ("signal", "regime", "rl")
#: The registry metrics a report shows (the trainer's names; missing ones are left out).
GATE_KEYS = ("gate_passed", "mean_ic", "sharpe", "hit_rate", "baseline_mean_ic",
             "baseline_sharpe", "min_ic", "min_sharpe", "why")


def describe(rec: Any) -> dict[str, Any]:
    """One registry record (:class:`tm_common.models.registry.ModelRecord`) as report values."""
    m = rec.metrics or {}
    gate: dict[str, Any] = m["gate"] if isinstance(m.get("gate"), dict) else {}
    out = {"version": rec.version, "kind": rec.kind, "stage": rec.stage,
           "instrument": rec.instrument, "created_utc": utc_iso(rec.created_at_ms)}
    for k in GATE_KEYS:
        v = m.get(k, gate.get(k.removeprefix("gate_")))
        if v is not None:
            out[k] = v
    forced = [h for h in m.get("_history", []) if isinstance(h, dict)
              and h.get("stage") == "production" and (h.get("evidence") or {}).get("forced")]
    if forced:
        out["forced"] = forced[-1].get("reason", "")
    return out


async def read_models(database_url: str, candidate: str | None = None) -> dict[str, Any]:
    """The production models of every kind and the signal candidate (``candidate``, else the
    newest non-production signal model). Raises what the database raises."""
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry

    engine = make_engine(database_url)
    try:
        reg = ModelRegistry(engine)
        prod: dict[str, list[dict[str, Any]]] = {}
        cand = None
        for kind in KINDS:
            rows = await reg.list(kind)
            prod[kind] = [describe(r) for r in rows if r.stage == "production"]
            if kind == "signal":
                pick = [r for r in rows if (r.version == candidate if candidate
                                            else r.stage != "production")]
                cand = describe(pick[0]) if pick else None
        return {"production": prod, "signal_candidate": cand}
    finally:
        await engine.dispose()


def registry_models(database_url: str, candidate: str | None = None,
                    timeout_s: float = 20.0) -> dict[str, Any]:
    """:func:`read_models` from synchronous code; ``{"unavailable": why}`` when there is no
    database URL or the registry cannot be read (the report says so rather than failing)."""
    if not database_url:
        return {"unavailable": "no model registry for this run (no database URL)"}
    try:
        return asyncio.run(asyncio.wait_for(read_models(database_url, candidate), timeout_s))
    except Exception as e:  # noqa: BLE001 - any failure to read is shown, never fatal here
        first = (str(e).splitlines() or [""])[0][:200].replace(database_url, "<database URL>")
        return {"unavailable": f"model registry unreadable: {type(e).__name__}: {first}"}
