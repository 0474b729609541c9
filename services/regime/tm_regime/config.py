"""Regime settings (``TM_REGIME_*``; shared fields ``TM_*``), built once and passed down."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from tm_common.bus.signing import signing_key
from tm_common.bus.streams import MODELS_PROMOTED
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings


class RegimeSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE_ENV_PREFIXES["regime"])
    service_name: str = "regime"
    http_port: int = SERVICE_PORTS["regime"]
    # HMAC keys of the signed streams it produces or verifies (tm_common.bus.signing)
    signing_key_models_promoted: SecretStr | None = signing_key(MODELS_PROMOTED)
    # symbols (TM_SYMBOLS, common): the instruments that get a regime per bar
    no_model_kelly: float = Field(default=0.50, ge=0.0, le=1.0, description="Kelly fraction "
                                  "published without a regime model (Neutral's default)")
    replay_bars: int = Field(default=300, ge=2, description="recent closes kept to re-filter "
                             "after a model reload (bars)")
    db_enabled: bool = Field(default=True, description="model registry and regimes table; off = "
                             "no model can load")
    model_prefetch_retry_s: float = Field(default=5.0, gt=0)
