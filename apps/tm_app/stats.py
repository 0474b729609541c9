"""Run statistics for the report: total and per instrument, from the run record.

Equity comes from the portfolio snapshots (the accounting of record). Per-instrument PnL is its
exact share of that equity (:mod:`tm_app.report.attribution`): trading cash flow at the fill
prices (slippage included where it occurred) plus the position at the snapshot's mark, minus
that instrument's fees and funding. The rows add up: Σ pnl = final equity − initial, Σ fees,
Σ funding = the totals, and each row's ``total_return`` is its pnl over the initial equity, so
they sum to the total return (``residual``: what no instrument explains, zero unless the
portfolio adopted a position from the exchange). Annualisation: 6 bars a day × 365 days.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from scipy.stats import spearmanr
from tm_quant.flows import unit_curve

from tm_app.record import RunRecord
from tm_app.report.attribution import attribute

BARS_PER_YEAR = 6 * 365


def performance(equity: list[float], bars_per_year: int = BARS_PER_YEAR) -> dict[str, float]:
    """Return, Sharpe, Sortino, Calmar, max drawdown of an equity curve sampled once per bar."""
    e = np.asarray(equity, dtype=float)
    if len(e) < 2 or e[0] <= 0:
        return {k: float("nan") for k in ("total_return", "cagr", "sharpe", "sortino", "calmar",
                                          "max_drawdown", "vol_annual")}
    r = np.diff(e) / e[:-1]
    years = len(r) / bars_per_year
    total = e[-1] / e[0] - 1
    cagr = (e[-1] / e[0]) ** (1 / years) - 1 if years > 0 and e[-1] > 0 else float("nan")
    sd = r.std(ddof=1) if len(r) > 1 else 0.0
    down = r[r < 0]
    dsd = math.sqrt((down ** 2).sum() / len(r)) if len(r) else 0.0
    peak = np.maximum.accumulate(e)
    mdd = float(((peak - e) / peak).max())
    ann = math.sqrt(bars_per_year)
    return {
        "total_return": float(total), "cagr": float(cagr),
        "sharpe": float(r.mean() / sd * ann) if sd > 0 else 0.0,
        "sortino": float(r.mean() / dsd * ann) if dsd > 0 else 0.0,
        "calmar": float(cagr / mdd) if mdd > 0 and not math.isnan(cagr) else 0.0,
        "max_drawdown": mdd, "vol_annual": float(sd * ann),
    }


def run_stats(rec: RunRecord, initial_equity: float) -> dict:
    snaps = rec.snapshots
    bars = rec.bars
    closes: dict[str, dict[int, float]] = defaultdict(dict)
    for b in bars:
        closes[b.instrument][b.open_time_ms] = float(b.close)
    times = sorted({s.bar_time_ms for s in snaps})
    equity = [initial_equity] + [float(s.equity) for s in snaps]
    # external flows (BalanceReconciled) are not returns: the statistics are per unit
    total = performance(unit_curve(initial_equity, [(float(s.equity), float(s.transfers))
                                                    for s in snaps]))
    mean_eq = float(np.mean(equity)) if equity else initial_equity
    # per instrument: exact attribution of the equity of record (report/attribution.py)
    att = attribute(rec, Decimal(str(initial_equity)))
    rows = att.instruments.values()
    notional = float(sum((a.traded_notional for a in rows), Decimal(0)))
    total.update({"fills": len(rec.fills), "orders": len(rec.orders),
                  "turnover": notional / mean_eq if mean_eq else 0.0,
                  "final_equity": equity[-1], "bars": len(times),
                  "pnl": float(att.equity_change), "residual": float(att.residual),
                  "unaccounted_executions": att.unaccounted,
                  "fees": float(sum((a.fees for a in rows), Decimal(0))),
                  "funding": float(sum((a.funding for a in rows), Decimal(0))),
                  "slippage": float(sum((a.slippage for a in rows), Decimal(0)))})
    per: dict[str, dict] = {}
    for inst, a in att.instruments.items():
        cl = closes.get(inst, {})
        ts = [t for t in times if t in cl]
        # bar j (snapshot j-1 → j) is in the market when a position was held after j-1
        moves = [(h, b - x) for h, x, b in zip(a.held, a.curve, a.curve[1:])]
        active = sum(1 for h, _ in moves if h)
        wins = sum(1 for h, d in moves if h and d > 0)
        curve = [initial_equity] + [initial_equity + float(x) for x in a.curve]
        st = performance(curve)
        st.update({"pnl": float(a.pnl), "price_pnl": float(a.price_pnl), "fees": float(a.fees),
                   "funding": float(a.funding), "slippage": float(a.slippage),
                   "win_rate": wins / active if active else float("nan"),
                   "bars_in_market": active,
                   "turnover": float(a.traded_notional) / mean_eq if mean_eq else 0.0,
                   "buy_and_hold": cl[ts[-1]] / cl[ts[0]] - 1 if len(ts) > 1 else float("nan")})
        per[inst] = st
    active = sum(v["bars_in_market"] for v in per.values())
    total["win_rate"] = (sum(v["win_rate"] * v["bars_in_market"] for v in per.values()
                             if v["bars_in_market"]) / active) if active else float("nan")
    bh_curve = [initial_equity] + buy_and_hold_curve(rec, initial_equity)
    bh = performance(bh_curve)
    bh.update({"final_equity": bh_curve[-1], "bars": len(times), "fees": 0.0, "funding": 0.0,
               "orders": 0, "turnover": 0.0})
    total["buy_and_hold"] = bh["total_return"]
    return {"total": total, "per_instrument": per, "signal_ic": signal_ic(rec),
            "buy_and_hold": bh,
            "monthly_returns": monthly_returns([(s.bar_time_ms, float(s.equity)) for s in snaps],
                                               initial_equity)}


def stats_from(rec: RunRecord, initial_equity: float, open_ms: int = 0) -> dict:
    """Return, Sharpe and drawdown (``total``), realised IC (``signal_ic``) and orders of the
    part of a run from the bar opening at ``open_ms`` on: its equity curve starts at the last
    snapshot before that bar (else ``initial_equity``). ``open_ms`` 0: the whole run, as
    :func:`run_stats` gives them (without its attribution)."""
    snaps = rec.snapshots
    base = next((float(s.equity) for s in reversed(snaps) if s.bar_time_ms < open_ms),
                initial_equity)
    before = next((float(s.transfers) for s in reversed(snaps) if s.bar_time_ms < open_ms), 0.0)
    total = performance(unit_curve(base, [(float(s.equity), float(s.transfers) - before)
                                          for s in snaps if s.bar_time_ms >= open_ms]))
    part = rec.from_bar(open_ms)
    return {"total": total, "signal_ic": signal_ic(part), "orders": len(part.orders)}


def buy_and_hold_curve(rec: RunRecord, initial_equity: float) -> list[float]:
    """Equal-weight buy and hold at each snapshot's bar: ``initial_equity`` split equally over
    the instruments at the first snapshot's close, held without costs. An instrument with no
    close at a bar keeps its last close; one with no close yet at the first bar is left out."""
    closes: dict[str, dict[int, float]] = defaultdict(dict)
    for b in rec.bars:
        closes[b.instrument][b.open_time_ms] = float(b.close)
    times = [s.bar_time_ms for s in rec.snapshots]
    if not times:
        return []
    held = {i: cl[times[0]] for i, cl in closes.items() if times[0] in cl and cl[times[0]] > 0}
    if not held:
        return [initial_equity] * len(times)
    last = dict(held)
    out = []
    for t in times:
        for i in held:
            last[i] = closes[i].get(t, last[i])
        out.append(initial_equity * sum(last[i] / held[i] for i in held) / len(held))
    return out


def monthly_returns(equity: list[tuple[int, float]], initial_equity: float
                    ) -> list[dict[str, float | int]]:
    """Return of each calendar month (UTC) from ``(bar_time_ms, equity)`` points, oldest first:
    the month's last equity over the previous month's last (the first month: over
    ``initial_equity``). Rows ``{"year", "month" (1-12), "return", "end_equity"}``."""
    ends: dict[tuple[int, int], float] = {}
    for ms, eq in sorted(equity):
        d = datetime.fromtimestamp(ms / 1000, UTC)
        ends[(d.year, d.month)] = eq
    rows, prev = [], initial_equity
    for (y, m), eq in sorted(ends.items()):
        rows.append({"year": y, "month": m, "return": eq / prev - 1 if prev > 0 else float("nan"),
                     "end_equity": eq})
        prev = eq
    return rows


def signal_ic(rec: RunRecord, horizon_bars: int = 6) -> dict[str, float]:
    """Realised Spearman IC of the signal's P(up) against the forward log return over
    ``horizon_bars`` during the run (out of sample by construction: the run lies after training)."""
    closes: dict[str, dict[int, float]] = defaultdict(dict)
    for b in rec.bars:
        closes[b.instrument][b.open_time_ms] = float(b.close)
    out = {}
    allp, allr = [], []
    for inst, cl in closes.items():
        ts = sorted(cl)
        idx = {t: i for i, t in enumerate(ts)}
        p, r = [], []
        for s in rec.signals:
            if s.instrument != inst or s.confidence <= 0 or s.bar_time_ms not in idx:
                continue
            j = idx[s.bar_time_ms] + horizon_bars
            if j < len(ts):
                p.append(s.probability)
                r.append(math.log(cl[ts[j]] / cl[s.bar_time_ms]))
        if len(p) >= 10:
            out[inst] = float(spearmanr(p, r).statistic)
        allp += p
        allr += r
    out["all"] = float(spearmanr(allp, allr).statistic) if len(allp) >= 10 else float("nan")
    return out


def percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    a = np.asarray(xs)
    return {"n": len(xs), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}
