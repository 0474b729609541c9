"""Exposure limits on one incoming target fraction, given the exposure of the other instruments.

Fractions are signed fractions of equity; equity is USDT. Only the incoming target is changed
(the other instruments' orders are already out), and a limit only ever moves it toward zero:
|result| ≤ |input| and the sign never flips. The caps, in the order applied:

1. per instrument: |t| ≤ ``fraction_cap(instrument)`` (default 1.0);
2. per instrument notional: |t| × equity ≤ ``max_notional_usdt``;
3. risk budget (HRP): |t| ≤ budget × ``gross_cap`` (budgets sum to 1, so the caps sum to the
   gross cap);
4. gross leverage: |t| ≤ max(0, ``gross_cap`` − Σ_{j≠i} |t_j|);
5. net leverage: for t > 0, t ≤ max(0, ``net_cap`` − Σ_{j≠i} t_j); for t < 0,
   |t| ≤ max(0, ``net_cap`` + Σ_{j≠i} t_j).

If the other instruments already satisfy the gross and net caps, the result keeps the whole
portfolio within both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tm_risk.domain.params import RiskParams


@dataclass(frozen=True, slots=True)
class Capped:
    """The target after the caps, and one reason per cap that bound it (in order)."""

    fraction: float
    reasons: tuple[str, ...] = ()


def apply_limits(instrument: str, fraction: float, others: Mapping[str, float], equity: float,
                 budget: float | None, params: RiskParams) -> Capped:
    """Apply the caps of the module docstring to ``fraction`` for ``instrument``.

    ``others``: signed exposure fraction of every other instrument (the key ``instrument`` is
    ignored); ``equity``: USDT (> 0); ``budget``: the instrument's HRP risk budget in [0, 1], or
    None to skip the budget cap."""
    if not math.isfinite(fraction):
        raise ValueError(f"target fraction is not finite: {fraction!r}")
    sign = 1.0 if fraction >= 0 else -1.0
    mag = abs(fraction)
    reasons: list[str] = []

    def cap(limit: float, what: str) -> None:
        nonlocal mag
        limit = max(0.0, limit)
        if mag > limit:
            reasons.append(f"{what}: {mag:.4f} -> {limit:.4f}")
            mag = limit

    cap(params.fraction_cap(instrument), f"instrument cap {params.fraction_cap(instrument):g}")
    if equity > 0:
        cap(float(params.max_notional_usdt) / equity, f"notional cap {params.max_notional_usdt} USDT")
    if budget is not None:
        cap(budget * params.gross_cap, f"risk budget {budget:.4f} x gross {params.gross_cap:g}")
    rest = [v for k, v in others.items() if k != instrument]
    cap(params.gross_cap - sum(abs(v) for v in rest), f"gross leverage cap {params.gross_cap:g}")
    net_rest = sum(rest)
    cap(params.net_cap - sign * net_rest, f"net leverage cap {params.net_cap:g}")
    return Capped(sign * mag if mag > 0 else 0.0, tuple(reasons))
