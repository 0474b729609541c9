"""The RL policy's observation and the paper book behind two of its entries. Pure (numpy only).

This one module builds the observation for the trainer's environment
(``tm_trainer.rl.env``) *and* for the live sizer, so the policy sees the same numbers in training
and in production. Every entry uses only what is known at the close of the bar being sized.

``OBS_SPEC`` (the order of the vector; a policy bundle stores it and the sizer refuses a policy
whose spec differs), with the fixed scaling applied here:

=============  ==================================================  ================================
name           value at the close of bar t                          scaling
=============  ==================================================  ================================
probability    calibrated P(up) of the signal                       ``2p - 1`` ∈ [-1, 1]
confidence     signal confidence                                    as is, [0, 1]
live_ic        rolling Spearman IC of matured predictions (None→0)  × 5
p_bull..       filtered regime probabilities (Bull, Neutral,        as is, [0, 1]
p_crisis       Bear, Crisis)
volatility     GARCH one-bar-ahead sigma of log returns (decimal)   × 100 (percent per bar)
position       current target fraction (the previous decision)      / max_fraction ∈ [-1, 1]
ret_1..ret_3   the last three one-bar log returns, newest first     × 100 (percent)
drawdown       paper drawdown of this sizer's own targets           × 10
kelly          the regime-scaled, capped Kelly fraction of bar t    / max_fraction ∈ [-1, 1]
=============  ==================================================  ================================

(``kelly`` is one entry beyond the issue's list: it hands the policy the baseline it has to beat.)
Every entry is clipped to ``[-OBS_CLIP, OBS_CLIP]``; a non-finite input becomes 0.

The paper book (:class:`PaperBook`) is the equity of "this instrument traded at exactly the
targets": ``equity *= 1 + position * r - cost * |Δposition| - position * funding``. The trainer's
reward uses the same book, and the live sizer keeps one per instrument from ``md.bar`` closes and
its own targets (no funding live: the sizer sees no funding feed; its effect on drawdown is small).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OBS_SPEC: tuple[str, ...] = (
    "probability", "confidence", "live_ic", "p_bull", "p_neutral", "p_bear", "p_crisis",
    "volatility", "position", "ret_1", "ret_2", "ret_3", "drawdown", "kelly",
)
OBS_DIM = len(OBS_SPEC)
N_RETURNS = 3
OBS_CLIP = 10.0
UNIFORM_REGIME = (0.25, 0.25, 0.25, 0.25)


def _f(x: float | None) -> float:
    return float(x) if x is not None and math.isfinite(x) else 0.0


def build_observation(*, probability: float, confidence: float, live_ic: float | None,
                      regime_probs: Sequence[float] | None, volatility: float, position: float,
                      returns: Sequence[float], drawdown: float, kelly: float,
                      max_fraction: float) -> np.ndarray:
    """The observation vector (float64, ``OBS_DIM``) for one instrument at one bar close.

    Args:
        probability: P(up) in [0, 1] (NaN → 0.5).
        confidence, live_ic: from the signal (``live_ic`` None → 0).
        regime_probs: (Bull, Neutral, Bear, Crisis) or None (→ uniform).
        volatility: per-bar sigma, decimal.
        position: the current target fraction of equity (signed).
        returns: recent one-bar log returns, newest first; fewer than 3 are padded with 0.
        drawdown: paper drawdown, [0, 1].
        kelly: the Kelly target fraction of this bar (signed).
        max_fraction: the policy's position scale (> 0).
    """
    m = max_fraction if max_fraction > 0 else 1.0
    p = probability if probability is not None and math.isfinite(probability) else 0.5
    rp = UNIFORM_REGIME if regime_probs is None or len(regime_probs) != 4 else regime_probs
    rets = [_f(r) * 100.0 for r in list(returns)[:N_RETURNS]]
    rets += [0.0] * (N_RETURNS - len(rets))
    v = np.array([2.0 * p - 1.0, _f(confidence), 5.0 * _f(live_ic),
                  _f(rp[0]), _f(rp[1]), _f(rp[2]), _f(rp[3]),
                  100.0 * _f(volatility), _f(position) / m, *rets, 10.0 * _f(drawdown),
                  _f(kelly) / m], dtype=np.float64)
    return np.clip(v, -OBS_CLIP, OBS_CLIP)


@dataclass
class PaperBook:
    """Equity of one instrument traded at the sizer's targets (starts at 1.0, no leverage cap).

    ``hold(r, funding)`` applies one bar's simple return ``r`` (and a funding rate settled in it)
    to the position held; ``rebalance(new, cost_rate)`` moves to a new target paying
    ``cost_rate * |Δ|`` (fee + slippage per unit of notional traded, as a fraction of equity).
    """

    equity: float = 1.0
    peak: float = 1.0
    position: float = 0.0

    @property
    def drawdown(self) -> float:
        """``1 - equity / peak`` in [0, 1] (0 at a new peak)."""
        return 0.0 if self.peak <= 0 else max(0.0, 1.0 - self.equity / self.peak)

    def hold(self, ret: float, funding_rate: float = 0.0) -> float:
        """Apply one bar; returns the P&L as a fraction of equity."""
        pnl = self.position * _f(ret) - self.position * _f(funding_rate)
        self._apply(pnl)
        return pnl

    def rebalance(self, new_position: float, cost_rate: float) -> float:
        """Move to ``new_position``; returns the cost paid (fraction of equity, >= 0)."""
        cost = abs(_f(new_position) - self.position) * max(_f(cost_rate), 0.0)
        self.position = _f(new_position)
        self._apply(-cost)
        return cost

    def _apply(self, r: float) -> None:
        # A bar that loses everything floors at 0: the book is dead, not negative.
        self.equity = max(self.equity * (1.0 + r), 0.0)
        self.peak = max(self.peak, self.equity)

    def to_list(self) -> list[float]:
        return [self.equity, self.peak, self.position]

    @classmethod
    def from_list(cls, v: Sequence[float]) -> PaperBook:
        return cls(float(v[0]), float(v[1]), float(v[2]))
