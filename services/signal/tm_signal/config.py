"""Signal settings (``TM_SIGNAL_*``; shared fields ``TM_*``), built once and passed down."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from tm_common.bus.signing import signing_key
from tm_common.bus.streams import MODELS_PROMOTED
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings


class SignalSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE_ENV_PREFIXES["signal"])
    service_name: str = "signal"
    http_port: int = SERVICE_PORTS["signal"]
    # HMAC keys of the signed streams it produces or verifies (tm_common.bus.signing)
    signing_key_models_promoted: SecretStr | None = signing_key(MODELS_PROMOTED)
    # symbols (TM_SYMBOLS, common): the instruments that get a signal per bar
    btc_symbol: str | None = Field(default="BTCUSDT", description="source of the cross-asset "
                                   "features; empty = none (no buffering of other instruments)")
    dvol_currency: str = Field(default="BTC", description="DVOL index used by the features")
    live_ic_window: int = Field(default=60, ge=3, description="matured predictions in the IC")
    live_ic_min_pairs: int = Field(default=20, ge=3, description="matured predictions before "
                                   "live_ic is reported (None before)")
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0, description="below it the "
                                  "direction is 0")
    ic_reset_on_reload: bool = Field(default=False, description="forget the live IC track "
                                     "record when a new model version loads")
    fast_inference: bool = Field(default=True, description="walk the trees with numpy "
                                 "(~5x faster per row; equal to the booster to float32 rounding); "
                                 "off = xgboost inplace_predict")
    db_enabled: bool = Field(default=True, description="model registry, signals table and bar "
                             "history in the database; off = no model can load")
    history_dir: str | None = Field(default=None, description="CSV folder for warm-up; default "
                                    "data/history")
    trade_start_ms: int | None = Field(default=None, description="replays: bars that open "
                                       "before this (epoch ms) are warm-up, no signal "
                                       "(tm_app.warmup sets it)")
    model_prefetch_retry_s: float = Field(default=5.0, gt=0, description="registry retry while "
                                          "the first lookup fails")
    # Stale side inputs (tm_signal.domain.staleness): ages are market time at each bar's close.
    dvol_max_age_s: float = Field(default=2 * 86_400.0, gt=0, description="DVOL older than "
                                  "this at a bar's close is stale: withheld, confidence cut")
    funding_max_age_s: float = Field(default=86_400.0, gt=0, description="funding rate older "
                                     "than this (or none) is stale for a model that uses funding")
    stale_confidence_fraction: float = Field(default=0.5, ge=0.0, le=1.0, description="signal "
                                             "confidence factor per stale input; 0 = flat")

    @field_validator("btc_symbol", mode="before")
    @classmethod
    def _btc(cls, v):
        return None if v is None or str(v).strip() == "" else str(v).strip().upper()
