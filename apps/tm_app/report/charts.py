"""The data of the report's interactive charts (drawn in the page by uPlot, ``report.js``).

Every series is aligned on one time axis, in epoch **seconds** (uPlot's unit), one point per
portfolio snapshot; a missing value is ``None`` (a gap). Money in USDT, drawdown in percent
(negative), position as signed notional / equity.
"""

from __future__ import annotations

from typing import Any

from tm_app.record import RunRecord
from tm_app.stats import buy_and_hold_curve

TIERS = ["EMERGENCY_FLAT", "FLAT", "PURE_KELLY", "BLENDED", "FULL_RL"]
REGIME_INSTRUMENT = "BTCUSDT"


def _secs(ms: int) -> float:
    return ms / 1000


def equity_series(rec: RunRecord, initial_equity: float) -> dict[str, Any]:
    """Strategy equity, equal-weight buy and hold, drawdown %, per snapshot."""
    snaps = rec.snapshots
    return {"t": [_secs(s.bar_time_ms) for s in snaps],
            "strategy": [float(s.equity) for s in snaps],
            "buy_and_hold": buy_and_hold_curve(rec, initial_equity),
            "drawdown_pct": [-float(s.drawdown) * 100 for s in snaps]}


def position_series(rec: RunRecord) -> dict[str, Any]:
    """Signed notional / equity per instrument, per snapshot (0 when flat)."""
    insts = sorted({b.instrument for b in rec.bars} |
                   {p.instrument for s in rec.snapshots for p in s.positions})
    series: dict[str, list[float]] = {i: [] for i in insts}
    for s in rec.snapshots:
        q = {p.instrument: float(p.qty * p.mark_price) for p in s.positions}
        for i in insts:
            series[i].append(q.get(i, 0.0) / float(s.equity) if s.equity else 0.0)
    return {"t": [_secs(s.bar_time_ms) for s in rec.snapshots], "series": series}


def tier_series(rec: RunRecord) -> dict[str, Any]:
    """The cascade tier of each sizing decision as an index into ``tiers``, per instrument, on
    the union of the decisions' bar times (None where an instrument had no decision)."""
    times = sorted({z.bar_time_ms for z in rec.sized})
    insts = sorted({z.instrument for z in rec.sized})
    at = {(z.instrument, z.bar_time_ms): z.tier for z in rec.sized}
    series = {i: [TIERS.index(at[(i, t)]) if at.get((i, t)) in TIERS else None for t in times]
              for i in insts}
    return {"t": [_secs(t) for t in times], "tiers": TIERS, "series": series}


def markers(rec: RunRecord) -> dict[str, Any]:
    """Breaker transitions and the regime of :data:`REGIME_INSTRUMENT` (changes only)."""
    regimes, last = [], None
    for r in sorted(rec.regimes, key=lambda r: r.bar_time_ms):
        if r.instrument == REGIME_INSTRUMENT and r.label != last:
            regimes.append({"t": _secs(r.bar_time_ms), "label": r.label})
            last = r.label
    return {"breaker": [{"t": _secs(b.at_ms), "to": b.to_state, "trigger": b.trigger}
                        for b in rec.breaker],
            "regimes": regimes, "regime_instrument": REGIME_INSTRUMENT}


def compare_series(prod: RunRecord, challenger: RunRecord) -> dict[str, Any]:
    """Production's and the challenger's equity and drawdown % on the union of their snapshot
    times (None where one has no snapshot)."""
    books = [{s.bar_time_ms: s for s in r.snapshots} for r in (prod, challenger)]
    times = sorted(set(books[0]) | set(books[1]))

    def col(book: dict, f) -> list[float | None]:
        return [f(book[t]) if t in book else None for t in times]
    return {"t": [_secs(t) for t in times],
            "production": col(books[0], lambda s: float(s.equity)),
            "challenger": col(books[1], lambda s: float(s.equity)),
            "production_dd_pct": col(books[0], lambda s: -float(s.drawdown) * 100),
            "challenger_dd_pct": col(books[1], lambda s: -float(s.drawdown) * 100)}


def chart_data(rec: RunRecord, initial_equity: float, challenger: Any = None) -> dict[str, Any]:
    """Everything the page's charts draw. ``challenger``: a shadow run (``candidate``,
    ``record``) → a ``challenger`` entry with the comparison, its positions and tiers."""
    out: dict[str, Any] = {"initial_equity": initial_equity,
                           "equity": equity_series(rec, initial_equity),
                           "positions": position_series(rec), "tiers": tier_series(rec),
                           "markers": markers(rec)}
    if challenger is not None:
        out["challenger"] = {"candidate": challenger.candidate,
                             "compare": compare_series(rec, challenger.record),
                             "positions": position_series(challenger.record),
                             "tiers": tier_series(challenger.record)}
    return out
