"""Regime-scaled, capped Kelly fraction and the rolling win/loss ratio it needs. Pure.

Full Kelly for a bet that wins ``b`` times what it loses, with win probability ``p``:
``f* = p - (1 - p) / b``. For a signal, ``p`` is the calibrated probability that the signal's
*direction* is right (``P(up)`` for a long, ``1 - P(up)`` for a short). The sizer bets a fraction
of full Kelly that depends on the regime (Bull 0.67, Neutral 0.50, Bear 0.25, Crisis 0.17 by
default), capped at ``max_fraction`` of equity, signed by the direction, and 0 when the edge is not
positive.

``b`` is the rolling ratio of the average win to the average loss of past one-bar outcomes
``direction_{t-1} * return_t`` (the same outcomes in the trainer's environment and in the
service), shrunk toward a prior while there are few outcomes (:func:`win_loss_ratio`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tm_quant.checks import check_range
from tm_quant.regime import STATE_LABELS, KellyFractions

REGIME_LABELS: tuple[str, ...] = STATE_LABELS       # Bull, Neutral, Bear, Crisis
#: One source of truth for the defaults: tm_quant's KellyFractions (0.67 / 0.50 / 0.25 / 0.17).
DEFAULT_REGIME_FRACTIONS: dict[str, float] = dict(
    zip(STATE_LABELS, KellyFractions().as_array().tolist(), strict=True))


@dataclass(frozen=True)
class KellyParams:
    """Kelly settings.

    Attributes:
        regime_fractions: multiplier of full Kelly per regime label, each in [0, 1].
        max_fraction: cap on |fraction| of equity, in [0, 1] (default 0.25).
        prior_b: win/loss ratio used with no history and as the shrinkage target (> 0).
        prior_weight: pseudo-outcomes of the prior in the shrinkage (>= 0).
        min_each: wins and losses needed (each) before the history counts at all.
        window: outcomes kept for the rolling ratio (bars).
        b_min, b_max: clip of the ratio (keeps one lucky window from sizing up wildly).
    """

    regime_fractions: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_REGIME_FRACTIONS))
    max_fraction: float = 0.25
    prior_b: float = 1.0
    prior_weight: float = 30.0
    min_each: int = 10
    window: int = 180
    b_min: float = 0.25
    b_max: float = 4.0

    def __post_init__(self) -> None:
        missing = set(REGIME_LABELS) - set(self.regime_fractions)
        if missing:
            raise ValueError(f"regime_fractions lacks {sorted(missing)}")
        for k, v in self.regime_fractions.items():
            check_range(f"regime fraction {k}", v, 0.0, 1.0)
        check_range("max_fraction", self.max_fraction, 0.0, 1.0)
        if not (self.prior_b > 0 and 0 < self.b_min <= self.b_max and self.prior_weight >= 0
                and self.window >= 1 and self.min_each >= 1):
            raise ValueError("need prior_b > 0, 0 < b_min <= b_max, prior_weight >= 0, "
                             "window >= 1, min_each >= 1")

    def regime_fraction(self, label: str | None) -> float:
        """The multiplier of ``label``; an unknown or missing label gets the most cautious one."""
        if label in self.regime_fractions:
            return float(self.regime_fractions[label])   # type: ignore[index]
        return min(float(v) for v in self.regime_fractions.values())


def kelly_fraction(p_up: float, direction: int, b: float, regime_fraction: float,
                   max_fraction: float) -> float:
    """Signed target fraction of equity from Kelly.

    Args:
        p_up: calibrated probability that the price goes up, [0, 1].
        direction: the signal's direction, -1, 0 or 1 (0 → 0).
        b: win/loss ratio (> 0).
        regime_fraction: multiplier of full Kelly, [0, 1].
        max_fraction: cap on the absolute result, >= 0.

    Returns:
        ``direction * min(max(p - (1 - p) / b, 0) * regime_fraction, max_fraction)`` with
        ``p = p_up`` for a long and ``1 - p_up`` for a short; 0.0 for any non-finite or
        out-of-range input (never NaN).
    """
    if direction not in (-1, 1):
        return 0.0
    vals = (p_up, b, regime_fraction, max_fraction)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
        return 0.0
    if not (0.0 <= p_up <= 1.0 and b > 0 and regime_fraction > 0 and max_fraction > 0):
        return 0.0
    p = p_up if direction > 0 else 1.0 - p_up
    edge = p - (1.0 - p) / b
    if not edge > 0:
        return 0.0
    f = min(edge * min(regime_fraction, 1.0), max_fraction)
    return float(direction) * f


def win_loss_ratio(outcomes: Iterable[float], params: KellyParams) -> float:
    """Average win / average loss of ``outcomes`` (one-bar P&L signs of past signals).

    Zero outcomes are ignored. With fewer than ``min_each`` wins or losses the prior is returned;
    otherwise the empirical ratio is shrunk toward the prior with ``prior_weight`` pseudo-outcomes
    and clipped to ``[b_min, b_max]``.
    """
    o = np.asarray(outcomes if isinstance(outcomes, (list, tuple, np.ndarray)) else list(outcomes),
                   dtype=np.float64)
    pos, neg = o[o > 0], o[o < 0]
    nw, nl = int(pos.size), int(neg.size)
    wins, losses = float(pos.sum()), float(-neg.sum())
    if nw < params.min_each or nl < params.min_each or losses <= 0:
        return float(params.prior_b)
    emp = (wins / nw) / (losses / nl)
    n = nw + nl
    b = (n * emp + params.prior_weight * params.prior_b) / (n + params.prior_weight)
    return float(min(max(b, params.b_min), params.b_max))
