"""Sizer settings (``TM_SIZER_*``; shared fields ``TM_*``), built once and passed down."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from tm_common.bus.signing import signing_key
from tm_common.bus.streams import MODELS_PROMOTED, RISK_BREAKER
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings
from tm_quant.sizing.cascade import CascadeThresholds
from tm_quant.sizing.kelly import DEFAULT_REGIME_FRACTIONS, KellyParams

from tm_sizer.domain.engine import SizerParams


class SizerSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE_ENV_PREFIXES["sizer"])
    service_name: str = "sizer"
    http_port: int = SERVICE_PORTS["sizer"]
    # HMAC keys of the signed streams it produces or verifies (tm_common.bus.signing)
    signing_key_risk_breaker: SecretStr | None = signing_key(RISK_BREAKER)
    signing_key_models_promoted: SecretStr | None = signing_key(MODELS_PROMOTED)
    # symbols (TM_SYMBOLS, common): the instruments that are sized
    # Kelly
    max_fraction: float = Field(default=0.25, gt=0, le=1, description="cap on |target|, of "
                                "equity (Kelly and RL)")
    regime_fractions: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_REGIME_FRACTIONS),
        description="fraction of full Kelly per regime (JSON object)")
    kelly_prior_b: float = Field(default=1.0, gt=0, description="win/loss ratio without history")
    kelly_prior_weight: float = Field(default=30.0, ge=0)
    kelly_min_each: int = Field(default=10, ge=1, description="wins and losses before the "
                                "rolling ratio counts")
    kelly_window_bars: int = Field(default=180, ge=1, description="outcomes in the rolling ratio")
    # cascade
    full_rl_confidence: float = Field(default=0.50, ge=0, le=1)
    full_rl_min_ic: float = Field(default=0.05, ge=-1, le=1)
    blended_confidence: float = Field(default=0.40, ge=0, le=1)
    kelly_confidence: float = Field(default=0.30, ge=0, le=1)
    # paper book (observation): fee + slippage per unit of notional traded
    fee_rate: float = Field(default=0.00055, ge=0)
    slippage_rate: float = Field(default=0.0002, ge=0)
    # join
    join_timeout_s: float = Field(default=120.0, ge=0, description="live only: flush a join "
                                  "still waiting after this many wall seconds (0 = never; never "
                                  "in TM_MODE replay or backtest, where time is the history's)")
    mode: str = Field(default="live", description="live/testnet/paper run the wall-clock join "
                      "timer; replay/backtest never do")
    join_check_interval_s: float = Field(default=5.0, gt=0)
    # service
    db_enabled: bool = Field(default=True, description="model registry and targets table; off "
                             "= no RL policy (Kelly tiers only) and no table writes")
    model_prefetch_retry_s: float = Field(default=5.0, gt=0)

    @property
    def join_timer_enabled(self) -> bool:
        """A wall-clock flush would make a replay depend on how long a service was down."""
        return self.join_timeout_s > 0 and self.mode.lower() not in ("replay", "backtest")

    def params(self) -> SizerParams:
        """The frozen domain parameters (raises ``ValueError`` on inconsistent values)."""
        return SizerParams(
            symbols=self.symbols,
            kelly=KellyParams(regime_fractions=dict(self.regime_fractions),
                              max_fraction=self.max_fraction, prior_b=self.kelly_prior_b,
                              prior_weight=self.kelly_prior_weight, min_each=self.kelly_min_each,
                              window=self.kelly_window_bars),
            thresholds=CascadeThresholds(
                full_rl_confidence=self.full_rl_confidence, full_rl_min_ic=self.full_rl_min_ic,
                blended_confidence=self.blended_confidence,
                kelly_confidence=self.kelly_confidence),
            cost_rate=self.fee_rate + self.slippage_rate)
