"""The 4-tier sizing cascade (plus the breaker override). Pure: values in, a decision out.

Evaluated in this order; the first rule that holds decides, so every input lands in exactly one
tier:

0. breaker ``OPEN`` → ``EMERGENCY_FLAT`` (target 0), whatever the signal, IC or policy say.
   Checked *first and for every tier* (the original design checked it only on the RL tier, so a
   Kelly-tier decision could still add exposure while the breaker was open).
1. live IC **significantly negative** → ``FLAT`` (target 0): the signal has been anti-predictive
   over its matured predictions, so it is followed in no direction and at no size;
2. confidence >= ``full_rl_confidence`` (0.50), live IC >= ``full_rl_min_ic`` (0.05) **and
   significantly positive**, and an RL policy that passed its validation gate → ``FULL_RL``
   (target = the RL fraction);
3. confidence >= ``blended_confidence`` (0.40) and live IC significantly positive → ``BLENDED``:
   0.5 RL + 0.5 Kelly, or Kelly alone when no policy passed its gate (the reason says which);
4. confidence >= ``kelly_confidence`` (0.30) → ``PURE_KELLY`` — also where rule 3's confidence
   lands when the live IC is not significantly positive (negative but not significantly, too
   close to 0, or too few matured predictions): "low confidence or IC failure → PURE_KELLY";
5. otherwise → ``FLAT`` (target 0).

"Significantly" is a one-sided test of the live IC over its ``live_ic_n`` matured predictions:
t = IC·sqrt((n − 2)/(1 − IC²)) against ±``ic_significance_z`` (1.645, 5 %;
:func:`tm_quant.ic.ic_significance`). So an RL policy never sizes, and no size beyond the Kelly
tier follows the signal's direction, unless the signal has shown skill live.

Breaker ``HALF_OPEN`` is passed through on purpose: the cascade sizes as usual and the risk
service, which owns the breaker, scales every approved target by its half-open factor. Scaling
here as well would shrink twice. An unknown breaker state (no ``risk.breaker`` event seen yet)
counts as ``CLOSED``: risk starts closed, and it drops exposure itself while open.

"An RL policy that passed its gate" is ``rl_fraction is not None``: the caller passes the policy's
action only when a policy is loaded *and* its manifest says the gate passed. A missing live IC
(``None`` or NaN: too few matured predictions) is never significant either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from tm_quant.checks import check_range
from tm_quant.ic import IC_SIGNIFICANCE_Z, ic_significance, ic_t_stat

Tier = Literal["FULL_RL", "BLENDED", "PURE_KELLY", "FLAT", "EMERGENCY_FLAT"]
TIERS: tuple[Tier, ...] = ("FULL_RL", "BLENDED", "PURE_KELLY", "FLAT", "EMERGENCY_FLAT")
BLEND_RL_WEIGHT = 0.5


@dataclass(frozen=True)
class CascadeThresholds:
    """Tier thresholds (confidence in [0, 1], IC in [-1, 1])."""

    full_rl_confidence: float = 0.50
    full_rl_min_ic: float = 0.05
    blended_confidence: float = 0.40
    kelly_confidence: float = 0.30
    ic_significance_z: float = IC_SIGNIFICANCE_Z

    def __post_init__(self) -> None:
        for name in ("full_rl_confidence", "blended_confidence", "kelly_confidence"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        check_range("full_rl_min_ic", self.full_rl_min_ic, -1.0, 1.0)
        check_range("ic_significance_z", self.ic_significance_z, 0.0, 10.0)
        if not self.ic_significance_z > 0:
            raise ValueError("ic_significance_z must be > 0 (at 0 every IC would be both "
                             f"significantly positive and negative), got {self.ic_significance_z}")


@dataclass(frozen=True)
class CascadeInput:
    """What one decision needs.

    Attributes:
        breaker_state: ``CLOSED``, ``OPEN``, ``HALF_OPEN`` or None (unknown → CLOSED).
        confidence: the signal's confidence, [0, 1] (NaN → 0).
        live_ic: rolling Spearman IC of the signal, or None before enough history.
        kelly_fraction: signed Kelly target (already regime-scaled and capped).
        rl_fraction: signed RL target, or None when no policy passed its gate.
        live_ic_n: matured predictions behind ``live_ic`` (its significance depends on it).
    """

    breaker_state: str | None
    confidence: float
    live_ic: float | None
    kelly_fraction: float
    rl_fraction: float | None
    live_ic_n: int = 0


@dataclass(frozen=True)
class Decision:
    """A sized target with its tier and a human-readable reason."""

    tier: Tier
    target_fraction: float
    reason: str
    kelly_fraction: float
    rl_fraction: float | None


def _finite(x: float | None, default: float = 0.0) -> float:
    return float(x) if x is not None and math.isfinite(x) else default


def decide(inp: CascadeInput, th: CascadeThresholds | None = None) -> Decision:
    """Apply the cascade (module docstring) to one input. Never raises for numeric input."""
    th = th or CascadeThresholds()
    kelly = _finite(inp.kelly_fraction)
    rl = None if inp.rl_fraction is None or not math.isfinite(inp.rl_fraction) \
        else float(inp.rl_fraction)
    conf = _finite(inp.confidence)
    ic = None if inp.live_ic is None or not math.isfinite(inp.live_ic) else float(inp.live_ic)

    if inp.breaker_state == "OPEN":
        return Decision("EMERGENCY_FLAT", 0.0, "circuit breaker OPEN: flat whatever the signal",
                        kelly, rl)
    c = f"confidence {conf:.3f}"
    n = int(inp.live_ic_n)
    skill = ic_significance(ic, n, th.ic_significance_z)
    if skill == "negative":
        assert ic is not None
        return Decision("FLAT", 0.0, f"live IC {ic:.3f} over {n} matured predictions is "
                        f"significantly negative (t {ic_t_stat(ic, n):.2f} <= "
                        f"-{th.ic_significance_z:g}): flat, the signal is not followed", kelly, rl)
    if conf >= th.full_rl_confidence and ic is not None and ic >= th.full_rl_min_ic \
            and skill == "positive" and rl is not None:
        return Decision("FULL_RL", rl, f"{c} >= {th.full_rl_confidence:.2f}, live IC {ic:.3f} >= "
                        f"{th.full_rl_min_ic:.2f} and significant over {n}, RL policy passed its "
                        "gate", kelly, rl)
    if conf >= th.blended_confidence and skill == "positive":
        why = _why_not_full(conf, ic, rl, th)
        if rl is None:
            return Decision("BLENDED", kelly, f"{c} >= {th.blended_confidence:.2f} ({why}); no RL "
                            "policy passed its gate: Kelly alone", kelly, None)
        target = BLEND_RL_WEIGHT * rl + (1.0 - BLEND_RL_WEIGHT) * kelly
        return Decision("BLENDED", target, f"{c} >= {th.blended_confidence:.2f} ({why}): "
                        "0.5 RL + 0.5 Kelly", kelly, rl)
    if conf >= th.blended_confidence:
        return Decision("PURE_KELLY", kelly, f"{c} >= {th.blended_confidence:.2f} but "
                        f"{_no_skill(ic, n, th)}: capped at PURE_KELLY", kelly, rl)
    if conf >= th.kelly_confidence:
        return Decision("PURE_KELLY", kelly, f"{c} >= {th.kelly_confidence:.2f}", kelly, rl)
    return Decision("FLAT", 0.0, f"{c} < {th.kelly_confidence:.2f}", kelly, rl)


def _no_skill(ic: float | None, n: int, th: CascadeThresholds) -> str:
    if ic is None:
        return "no live IC yet"
    return (f"live IC {ic:.3f} over {n} matured predictions is not significantly positive "
            f"(t {ic_t_stat(ic, n):.2f} < {th.ic_significance_z:g})")


def _why_not_full(conf: float, ic: float | None, rl: float | None, th: CascadeThresholds) -> str:
    if conf < th.full_rl_confidence:
        return f"below FULL_RL confidence {th.full_rl_confidence:.2f}"
    if ic is None:
        return "no live IC yet"
    if ic < th.full_rl_min_ic:
        return f"live IC {ic:.3f} < {th.full_rl_min_ic:.2f}"
    return "no RL policy passed its gate" if rl is None else "?"
