"""Model outputs: regime, signal and sized position."""

from __future__ import annotations

from typing import Literal

from tm_common.events.base import BarEventBody, register

RegimeLabel = Literal["Bull", "Neutral", "Bear", "Crisis"]
Tier = Literal["FULL_RL", "BLENDED", "PURE_KELLY", "FLAT", "EMERGENCY_FLAT"]


@register
class RegimeDetected(BarEventBody, frozen=True, kw_only=True):
    """Regime of ``instrument`` after bar ``bar_time_ms`` (the bar's open time, ms).

    ``probabilities`` are ordered Bull, Neutral, Bear, Crisis; ``volatility`` is the GARCH
    one-bar-ahead standard deviation of log returns; ``kelly_fraction`` the regime's multiplier.
    """

    TYPE = "regime.detected"
    SCHEMA_VERSION = 1

    label: RegimeLabel
    probabilities: tuple[float, float, float, float]
    volatility: float
    kelly_fraction: float
    model_version: str = ""


@register
class SignalGenerated(BarEventBody, frozen=True, kw_only=True):
    """Signal for ``instrument`` after bar ``bar_time_ms``.

    ``direction`` ∈ {-1, 0, 1}; ``probability`` = P(up) in [0, 1]; ``confidence`` in [0, 1];
    ``live_ic`` is the rolling Spearman IC of past predictions (None until enough history),
    over ``live_ic_n`` matured predictions.
    """

    TYPE = "signal.generated"
    SCHEMA_VERSION = 1

    direction: int
    probability: float
    confidence: float
    live_ic: float | None = None
    live_ic_n: int = 0
    model_version: str = ""
    inference_us: float = 0.0
    reason: str = ""


@register
class PositionSized(BarEventBody, frozen=True, kw_only=True):
    """Target position of ``instrument`` as a signed fraction of equity, with the cascade tier."""

    TYPE = "position.sized"
    SCHEMA_VERSION = 1

    target_fraction: float
    tier: Tier
    reason: str
    rl_fraction: float | None = None
    kelly_fraction: float = 0.0
    regime: RegimeLabel | None = None
    regime_stale: bool = False
    policy_version: str = ""
