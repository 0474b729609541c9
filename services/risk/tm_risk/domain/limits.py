"""Exposure limits on one incoming target fraction, given the exposure of the other instruments.

The caps are the rules of :data:`tm_risk.domain.rules.LIMITS` (a slice of ``RULES``, in its
order); :func:`apply_limits` runs them alone on plain values. Fractions are signed fractions of
equity; equity is USDT. Only the incoming target is changed (the other instruments' orders are
already out), and a limit only ever moves it toward zero: |result| ≤ |input| and the sign never
flips. If the other instruments already satisfy the gross and net caps, the result keeps the whole
portfolio within both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tm_risk.domain.params import RiskParams
from tm_risk.domain.rules import LIMITS, Rejection, Target


@dataclass(frozen=True, slots=True)
class Capped:
    """The target after the caps, and one reason per cap that bound it (in order)."""

    fraction: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Values:
    """The part of :class:`~tm_risk.domain.rules.Context` the caps read, given as values."""

    instrument: str
    params: RiskParams
    equity_usdt: float
    exposures: Mapping[str, float]
    budget: float | None


def apply_limits(instrument: str, fraction: float, others: Mapping[str, float], equity: float,
                 budget: float | None, params: RiskParams) -> Capped:
    """Apply the caps (:data:`~tm_risk.domain.rules.LIMITS`) to ``fraction`` for ``instrument``.

    ``others``: signed exposure fraction of every other instrument (the key ``instrument`` is
    ignored); ``equity``: USDT (> 0); ``budget``: the instrument's HRP risk budget in [0, 1], or
    None to skip the budget cap."""
    if not math.isfinite(fraction):
        raise ValueError(f"target fraction is not finite: {fraction!r}")
    ctx = _Values(instrument, params, equity, others, budget)
    target = Target(fraction)
    for r in LIMITS:
        out = r.apply(target, ctx)  # type: ignore[arg-type]  # the caps read only these values
        assert not isinstance(out, Rejection), "a cap never rejects"
        target = out
    return Capped(target.fraction, target.notes)
