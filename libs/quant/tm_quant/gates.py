"""Statistics behind the gates that noise should not pass: deflated Sharpe, timing, consistency.

Pure functions, numpy and the standard library only (``statistics.NormalDist`` for Φ and Φ⁻¹).

- **Deflated Sharpe ratio** (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014): the
  probability that the true per-bar Sharpe exceeds the Sharpe the *best of N independent trials*
  would show by luck alone, given the observed one's length, skewness and kurtosis::

      SR0 = sqrt(V) · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))      (γ: Euler–Mascheroni)
      DSR = Φ( (SR − SR0) · sqrt(T − 1) / sqrt(1 − skew · SR + (kurt − 1)/4 · SR²) )

  ``SR`` is per bar (not annualised), ``kurt`` is the plain (not excess) kurtosis, ``V`` is the
  variance of the trials' per-bar Sharpe ratios. With ``N = 1`` there is no selection, ``SR0 = 0``
  and the DSR is the probabilistic Sharpe ratio against 0.
- **Timing component**: a strategy's return minus that of a constant (buy-and-hold) exposure equal
  to its own average position. A strategy that is long on average in a rising market earns the
  drift without predicting anything; the timing component is what is left. Per bar:
  ``(pos_t − mean(pos)) · r_t − costs_t``; tested one-sided with its t statistic.
- **Consistency**: the OOS span cut into ``k`` contiguous sub-periods of (nearly) equal length;
  the share of sub-periods whose net return is positive.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0: the per-bar Sharpe the best of ``n_trials`` (>= 1) skill-less trials is expected to
    show, their Sharpe ratios having variance ``sharpe_variance`` (>= 0). 0 for one trial."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if not sharpe_variance >= 0:
        raise ValueError(f"sharpe_variance must be >= 0, got {sharpe_variance}")
    if n_trials == 1 or sharpe_variance == 0:
        return 0.0
    a = _N.inv_cdf(1.0 - 1.0 / n_trials)
    b = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def moments(pnl: np.ndarray) -> tuple[float, float, float, int]:
    """(per-bar Sharpe, skewness, plain kurtosis, T) of a PnL series (finite values only).
    Sharpe 0 and normal moments (0, 3) for a constant series; NaN Sharpe below 2 values."""
    x = np.asarray(pnl, dtype=np.float64)
    x = x[np.isfinite(x)]
    t = int(x.size)
    if t < 2:
        return float("nan"), 0.0, 3.0, t
    sd = float(np.std(x, ddof=1))
    if sd == 0.0:
        return 0.0, 0.0, 3.0, t
    z = (x - x.mean()) / float(np.std(x))
    return float(x.mean() / sd), float(np.mean(z ** 3)), float(np.mean(z ** 4)), t


def probabilistic_sharpe(sr: float, sr0: float, skew: float, kurt: float, t: int) -> float:
    """P(true per-bar Sharpe > ``sr0``) given an observed per-bar ``sr`` over ``t`` bars with
    the given skewness and plain kurtosis; NaN when ``t < 2`` or ``sr`` is not finite."""
    if t < 2 or not math.isfinite(sr):
        return float("nan")
    den = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if not den > 0:
        return float("nan")
    return float(_N.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(den)))


def deflated_sharpe(pnl: np.ndarray, n_trials: int, sharpe_variance: float) -> dict[str, Any]:
    """The deflated Sharpe ratio of one per-bar PnL series among ``n_trials`` trials.

    Returns:
        ``{"dsr": P in [0, 1] or NaN, "sr_bar": per-bar Sharpe, "sr0_bar": SR0, "skew",
        "kurtosis", "bars", "n_trials", "sharpe_variance"}``.
    """
    sr, skew, kurt, t = moments(pnl)
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return {"dsr": probabilistic_sharpe(sr, sr0, skew, kurt, t), "sr_bar": sr, "sr0_bar": sr0,
            "skew": skew, "kurtosis": kurt, "bars": t, "n_trials": int(n_trials),
            "sharpe_variance": float(sharpe_variance)}


def timing_pnl(pos: np.ndarray, ret_next: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Per-bar timing PnL: ``(pos − mean(pos)) · ret_next − costs`` (the strategy's net PnL
    minus a constant exposure of its own average position, which pays no costs)."""
    p = np.asarray(pos, dtype=np.float64)
    out: np.ndarray = (p - p.mean()) * np.asarray(ret_next, dtype=np.float64) - costs
    return out


def t_stat(x: np.ndarray) -> float:
    """t statistic of the mean of ``x`` against 0 (NaN below 3 values; 0 for a constant 0)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 3:
        return float("nan")
    sd = float(np.std(x, ddof=1))
    if sd == 0.0:
        return 0.0 if float(x.mean()) == 0.0 else math.copysign(math.inf, float(x.mean()))
    return float(x.mean() / (sd / math.sqrt(x.size)))


def subperiod_returns(pnl: np.ndarray, k: int) -> list[float]:
    """Sum of ``pnl`` over ``k`` (>= 1) contiguous, nearly equal sub-periods (``np.array_split``);
    fewer when the series is shorter than ``k``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    x = np.asarray(pnl, dtype=np.float64)
    return [float(np.sum(c)) for c in np.array_split(x, min(k, max(1, x.size))) if c.size]


def positive_share(values: list[float]) -> float:
    """Share of ``values`` that are > 0 (NaN for none)."""
    return float(np.mean([v > 0 for v in values])) if values else float("nan")
