"""Stale side inputs during a run, from the signals' reasons.

The signal service names every stale input in the reason of the bar's signal
(``stale dvol (age 2.4 d > 2.0 d)``, ``stale funding (none known)``:
``tm_signal.domain.staleness``): the input was withheld from the model and the confidence cut.
The report lists, per input, how many signals had it stale, on which instruments, when first
and last, and the oldest age seen, so a run that traded on a stale DVOL says so.
"""

from __future__ import annotations

import re
from typing import Any

from tm_app.report.trades import utc_iso

STALE = re.compile(r"stale (\w+) \((?:age ([0-9.]+) d > ([0-9.]+) d|none known)\)")


def stale_inputs(rec: Any) -> dict[str, dict[str, Any]]:
    """Input → ``{"signals", "instruments", "first_utc", "last_utc", "max_age_days",
    "limit_days"}`` (ages None when nothing was known yet); empty when no input was stale."""
    out: dict[str, dict[str, Any]] = {}
    for s in rec.signals:
        for m in STALE.finditer(s.reason or ""):
            name, age, limit = m.group(1), m.group(2), m.group(3)
            row = out.setdefault(name, {"signals": 0, "instruments": [], "first_ms": s.bar_time_ms,
                                        "last_ms": s.bar_time_ms, "max_age_days": None,
                                        "limit_days": None})
            row["signals"] += 1
            if s.instrument not in row["instruments"]:
                row["instruments"].append(s.instrument)
            row["first_ms"] = min(row["first_ms"], s.bar_time_ms)
            row["last_ms"] = max(row["last_ms"], s.bar_time_ms)
            if age is not None:
                row["max_age_days"] = max(float(age), row["max_age_days"] or 0.0)
                row["limit_days"] = float(limit)
    for row in out.values():
        row["instruments"] = sorted(row["instruments"])
        row["first_utc"], row["last_utc"] = utc_iso(row.pop("first_ms")), utc_iso(row.pop("last_ms"))
    return dict(sorted(out.items()))
