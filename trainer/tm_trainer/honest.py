"""Gates that noise should not pass, the trial count, and calibrated confidence.

Computed from the walk-forward's out-of-sample series only (each prediction made by a model
trained before its window, purge included); nothing here feeds back into a model or a window.

- :func:`honest_summary`: the equal-weight portfolio of the sign strategies
  (:func:`tm_trainer.evaluate.strategy_pnl`, costs included) → its per-bar Sharpe moments, its
  timing component (:func:`tm_quant.gates.timing_pnl`), its net return per sub-period
  (consistency), per year and per instrument; the Platt calibration fitted on the OOS
  predictions, the reliability curve and how often each cascade threshold is reached.
- **Trials** (:class:`Trials`): every signal candidate registered on the *same data* counts. Same
  data = the same :func:`trial_key`: sha256 of the sorted instruments, the open time of the first
  bar of their common timeline and the training cut-off. A trial is one (family, configuration)
  pair (:func:`trial_id`; the configuration includes the seed, the horizon and the gates), so
  re-running the same configuration is not a new trial, and every other seed or family is.
- :func:`honest_gates`: deflated Sharpe >= ``min_dsr`` given the trial count, timing t statistic
  >= ``min_timing_t``, and a positive net return in at least ``min_positive_share`` of
  ``consistency_periods`` sub-periods; on top of IC and Sharpe (:func:`tm_trainer.evaluate.gate`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tm_quant.calibration import apply_platt, fit_platt, reach, reliability
from tm_quant.features import BARS_PER_YEAR
from tm_quant.gates import (
    deflated_sharpe,
    moments,
    positive_share,
    subperiod_returns,
    t_stat,
    timing_pnl,
)
from tm_quant.sizing.cascade import CascadeThresholds
from tm_quant.turnover import hold_bars_for, smoothed_positions

from tm_trainer.config import GateConfig

_YEAR_MS = 365.25 * 86_400_000


def trial_key(instruments: Iterable[str], first_bar_ms: int, train_end_ms: int) -> str:
    """"Same data": sha256 of sorted instruments | first common bar (ms) | cut-off (ms)."""
    text = f"{','.join(sorted(instruments))}|{int(first_bar_ms)}|{int(train_end_ms)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trial_id(family: str, config_digest: str) -> str:
    """One trial = one (family, configuration) pair."""
    return hashlib.sha256(f"{family}|{config_digest}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PriorTrial:
    """A registered candidate: its trial key and id and its annualised OOS Sharpe (or None)."""

    key: str
    id: str
    sharpe: float | None


@dataclass(frozen=True)
class Trials:
    """The trials on this run's data: ``n`` (this one included) and the variance of their
    per-bar Sharpe ratios (0 when fewer than 2 have one)."""

    key: str
    n: int
    sharpe_variance: float

    @classmethod
    def count(cls, key: str, this_id: str, this_sharpe: float | None,
              prior: Iterable[PriorTrial]) -> Trials:
        others: dict[str, float | None] = {}
        for p in prior:
            if p.key == key and p.id != this_id:
                others[p.id] = p.sharpe
        srs = [float(s) / math.sqrt(BARS_PER_YEAR) for s in [*others.values(), this_sharpe]
               if s is not None and math.isfinite(s)]
        var = float(np.var(srs, ddof=1)) if len(srs) >= 2 else 0.0
        return cls(key=key, n=len(others) + 1, sharpe_variance=var)


#: P(up) series of one instrument → its positions in {-1, 0, 1} per bar (the strategy gated).
Positions = Callable[[np.ndarray], np.ndarray]


def sign_positions(p: np.ndarray) -> np.ndarray:
    """The sign strategy: ``sign(p − 0.5)`` (NaN → NaN: the row is dropped)."""
    out: np.ndarray = np.sign(np.asarray(p, dtype=np.float64) - 0.5)
    return out


def gated_positions(cfg: Any) -> Positions:
    """The positions the gates judge for ``cfg``: the sign strategy, or with a turnover budget
    the smoothed positions it would trade (:mod:`tm_quant.turnover`, as
    :func:`tm_trainer.turnover.gate_view` does for the Sharpe)."""
    budget = getattr(cfg, "turnover_budget_per_year", None)
    if budget is None:
        return sign_positions
    hold, band = hold_bars_for(budget), float(getattr(cfg, "turnover_band", 0.0))
    return lambda p: smoothed_positions(p, band=band, hold_bars=hold)


def _portfolio(series: dict[str, dict[str, np.ndarray]], cost: float,
               positions: Positions = sign_positions):
    """Per instrument: (ts, pos, net pnl, timing pnl) over rows with a finite next return (and a
    finite position); the equal-weight portfolio over the first ``m`` rows they share."""
    per = {}
    for s, d in series.items():
        all_pos = positions(d["p"])
        ok = np.isfinite(d["ret_next"]) & np.isfinite(all_pos)
        pos = all_pos[ok]
        costs = cost * np.abs(np.diff(np.concatenate([[0.0], pos])))
        r = d["ret_next"][ok]
        per[s] = {"ts": d["ts"][ok], "pos": pos, "pnl": pos * r - costs,
                  "timing": timing_pnl(pos, r, costs)}
    m = min((v["pnl"].size for v in per.values()), default=0)
    first = next(iter(per.values()), None)
    ts = first["ts"][:m] if first is not None else np.zeros(0, dtype=np.int64)
    port = np.mean([v["pnl"][:m] for v in per.values()], axis=0) if m else np.zeros(0)
    timing = np.mean([v["timing"][:m] for v in per.values()], axis=0) if m else np.zeros(0)
    return per, ts, port, timing


def _by_year(ts: np.ndarray, pnl: np.ndarray) -> dict[str, float | None]:
    years = np.array([dt.datetime.fromtimestamp(int(t) / 1000, tz=dt.UTC).year for t in ts])
    return {str(y): _r(float(pnl[years == y].sum())) for y in sorted(set(years.tolist()))}


def _r(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def forward_calibrated(series: dict[str, dict[str, np.ndarray]], k: int) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """(p, up) of the OOS bars after the first of ``k`` time blocks, each block's p calibrated by
    a Platt fit on the earlier blocks only (all instruments): the reach a model would have had
    with a calibration it could have known at the time. Empty when no block can be fitted."""
    blocks = {s: np.array_split(np.arange(d["p"].size), k) for s, d in series.items()}
    ups = {s: np.where(np.isfinite(d["fwd"]), d["fwd"] > 0, np.nan) for s, d in series.items()}
    ps: list[np.ndarray] = []
    us: list[np.ndarray] = []
    for j in range(1, k):
        past = [np.concatenate(b[:j]) for b in blocks.values()]
        try:
            cal = fit_platt(np.concatenate([series[s]["p"][i] for s, i in zip(blocks, past,
                                                                              strict=True)]),
                            np.concatenate([ups[s][i] for s, i in zip(blocks, past,
                                                                      strict=True)]))
        except ValueError:
            continue
        for s, b in blocks.items():
            ps.append(apply_platt(series[s]["p"][b[j]], cal["a"], cal["b"]))
            us.append(ups[s][b[j]])
    if not ps:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(ps), np.concatenate(us)


def honest_summary(series: dict[str, dict[str, np.ndarray]], cost: float, gates: GateConfig,
                   thresholds: CascadeThresholds | None = None,
                   positions: Positions = sign_positions) -> dict:
    """The trial-independent numbers behind the honest gates, and the calibration.

    Args:
        series: SYM → {"p", "fwd", "ret_next", "ts"} over all OOS bars in time order.
        cost: cost per unit of position change (decimal).
        gates: sub-period count for consistency.
        thresholds: the sizer's cascade thresholds (default: its defaults).
        positions: the strategy judged (default the sign strategy; :func:`gated_positions`).
    """
    th = thresholds or CascadeThresholds()
    per, ts, port, timing = _portfolio(series, cost, positions)
    sr, skew, kurt, bars = moments(port)
    sub = subperiod_returns(port, gates.consistency_periods) if port.size else []
    p_all = np.concatenate([d["p"] for d in series.values()]) if series else np.zeros(0)
    up_all = np.concatenate([np.where(np.isfinite(d["fwd"]), d["fwd"] > 0, np.nan)
                             for d in series.values()]) if series else np.zeros(0)
    try:
        cal = fit_platt(p_all, up_all)
    except ValueError as e:
        cal = {"a": 1.0, "b": 0.0, "n": 0, "flat": False, "error": str(e)}
    p_cal = apply_platt(p_all, cal["a"], cal["b"])
    named = {"PURE_KELLY": th.kelly_confidence, "BLENDED": th.blended_confidence,
             "FULL_RL": th.full_rl_confidence}
    reached = reach(p_cal, named)
    p_fwd, up_fwd = forward_calibrated(series, gates.consistency_periods)
    unreachable = [k for k, v in reached.items() if not v["reachable"]]
    return {
        "portfolio": {"sr_bar": _r(sr), "skew": _r(skew), "kurtosis": _r(kurt), "bars": bars,
                      "return": _r(float(port.sum()))},
        "timing": {"return": _r(float(timing.sum())), "t_stat": _r(t_stat(timing)),
                   "exposure": _r(float(np.mean([v["pos"].mean() for v in per.values()])))
                   if per else None},
        "consistency": {"periods": len(sub), "returns": [_r(x) for x in sub],
                        "positive_share": _r(positive_share(sub))},
        "by_year": _by_year(ts, port),
        "instruments": {s: {"return": _r(float(v["pnl"].sum())),
                            "timing_return": _r(float(v["timing"].sum())),
                            "turnover": _r(float(np.abs(np.diff(v["pos"])).sum())),
                            "by_year": _by_year(v["ts"], v["pnl"])} for s, v in per.items()},
        "calibration": {**cal, "fitted_on": "walk-forward OOS predictions (all instruments)"},
        "reliability": reliability(p_cal, up_all),
        "reliability_raw": reliability(p_all, up_all),
        "threshold_reach": reached,
        "threshold_reach_forward": reach(p_fwd, named),
        "reliability_forward": reliability(p_fwd, up_fwd),
        "unreachable_tiers": unreachable,
    }


def honest_gates(honest: dict, gates: GateConfig, trials: Trials) -> tuple[dict, list[str]]:
    """(the deflated Sharpe record, refusal reasons) of the deflated Sharpe, timing and
    consistency gates (module docstring); an empty reason list = all three pass."""
    pf = honest["portfolio"]
    sr = pf["sr_bar"]
    d = deflated_sharpe_from(sr, pf["skew"], pf["kurtosis"], pf["bars"], trials)
    reasons = []
    if not (d["dsr"] is not None and d["dsr"] >= gates.min_dsr):
        reasons.append(f"deflated Sharpe {_fmt(d['dsr'])} < {gates.min_dsr} "
                       f"({trials.n} trial{'s' if trials.n != 1 else ''} on this data)")
    tt = honest["timing"]["t_stat"]
    if not (tt is not None and tt >= gates.min_timing_t):
        reasons.append(f"timing t {_fmt(tt)} < {gates.min_timing_t} (return beyond a constant "
                       f"exposure of {_fmt(honest['timing']['exposure'])})")
    share = honest["consistency"]["positive_share"]
    if not (share is not None and share >= gates.min_positive_share):
        reasons.append(f"positive in {_fmt(share)} of {honest['consistency']['periods']} "
                       f"sub-periods < {gates.min_positive_share}")
    return d, reasons


def deflated_sharpe_from(sr: float | None, skew: float | None, kurt: float | None, bars: int,
                         trials: Trials) -> dict:
    """:func:`tm_quant.gates.deflated_sharpe` from stored moments (rounded, JSON-ready)."""
    from tm_quant.gates import expected_max_sharpe, probabilistic_sharpe

    sr0 = expected_max_sharpe(trials.n, trials.sharpe_variance)
    dsr = float("nan") if sr is None else probabilistic_sharpe(
        sr, sr0, skew or 0.0, 3.0 if kurt is None else kurt, bars)
    return {"dsr": _r(dsr), "sr0_bar": _r(sr0), "n_trials": trials.n,
            "sharpe_variance": _r(trials.sharpe_variance), "trial_key": trials.key}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


__all__ = ["PriorTrial", "Trials", "deflated_sharpe", "deflated_sharpe_from", "honest_gates",
           "honest_summary", "trial_id", "trial_key"]
