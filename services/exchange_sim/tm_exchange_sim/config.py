"""Exchange-sim settings: one frozen object from ``TM_SIM_*`` environment variables (shared
fields: ``TM_*``, see :mod:`tm_common.settings`).

API credentials are ``SecretStr`` (``TM_SIM_API_KEY`` / ``TM_SIM_API_SECRET``): never logged,
never in ``/status``. Fault settings are the start values; ``POST /sim/faults`` changes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings

DEFAULT_DEV_KEY = "tm-sim-key"
DEFAULT_DEV_SECRET = "tm-sim-secret"


class ExchangeSimSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE_ENV_PREFIXES["exchange_sim"])
    env_names: ClassVar[Mapping[str, str]] = {"sim_initial_balance": "sim_initial_balance_usdt"}

    service_name: str = "exchange-sim"
    http_port: int = Field(default=SERVICE_PORTS["exchange_sim"], ge=0, le=65535)

    # its own admin token (tm_common.admin_tokens), over the shared TM_ADMIN_TOKEN
    own_admin_token: ClassVar[tuple[str, str] | None] = ("sim_admin_token", "TM_SIM_ADMIN_TOKEN")
    sim_admin_token: SecretStr | None = Field(default=None, description="its own admin token "
                                           "(TM_SIM_ADMIN_TOKEN); overrides TM_ADMIN_TOKEN")


    sim_api_key: SecretStr = Field(default=SecretStr(DEFAULT_DEV_KEY),
                                   description="API key clients sign with")
    sim_api_secret: SecretStr = Field(default=SecretStr(DEFAULT_DEV_SECRET),
                                      description="HMAC secret of sim_api_key")
    sim_feed: Literal["history", "live"] = Field(
        default="history", description="history = replay the shipped bars on the replay clock "
        "(POST /sim/clock); live = a paper venue whose marks are the bars pushed to "
        "POST /sim/bars (and funding to POST /sim/funding)")
    sim_symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    sim_history_dir: Path | None = Field(default=None, description="unset = repo data/history")
    sim_start_ms: int | None = Field(default=None, description="first closed bar (open time, "
                                     "ms); unset = the first bar of the history")
    sim_initial_balance: Decimal = Field(default=Decimal(100000), gt=0)
    sim_taker_fee_rate: Decimal = Decimal("0.00055")
    sim_maker_fee_rate: Decimal = Decimal("0.0002")
    sim_slippage_bps: Decimal = Field(default=Decimal(2), ge=0)
    sim_default_leverage: Decimal = Field(default=Decimal(10), gt=0)
    sim_seed: int = 0
    sim_recv_window_max_ms: int = Field(default=60_000, ge=1)
    sim_rate_limit_per_s: int | None = Field(
        default=None, ge=1, description="a flat limit (requests per key, signed endpoint and "
        "second) instead of Bybit's per-endpoint table; unset = the table")
    sim_ip_limit_per_5s: int | None = Field(
        default=None, ge=1, description="requests per client IP in 5 s before an HTTP 403 ban "
        "(Bybit: 600); unset = no IP limit (tests and the mesh share one address)")
    sim_ip_ban_s: float = Field(default=600.0, ge=0, le=365 * 24 * 3600, description="length of the 403 ban "
                                "(Bybit: at least 10 minutes)")
    sim_kline_substeps: int = Field(
        default=4, ge=1, le=240, description="kline pushes per bar: substeps-1 partial "
        "(confirm=false) bars, the confirmed one, then the next bar opening; 1 = confirmed only")
    sim_kline_forming_row: bool = Field(
        default=True, description="GET /v5/market/kline answers the forming bar first, as "
        "Bybit does (ingest and tm backfill keep only the rows the answer's time has closed); "
        "false: closed bars only")
    sim_instruments_file: Path | None = Field(
        default=None, description="JSON in the shape of Bybit's /v5/market/instruments-info "
        "answer (a recorded snapshot works as is); its entries win over the shipped table; a "
        "symbol in neither gets filters derived from its first history close")

    sim_journal_file: Path | None = Field(
        default=None, description="keep every input that changes the venue (bars, funding, "
        "instruments, resets, orders) in this JSON-lines file and replay it at start, so a "
        "restarted venue is the same account (tm paper sets one per run); unset: the account "
        "lives in memory only")

    sim_max_body_bytes: int = Field(default=4 << 20, ge=1024, description="largest request "
                                    "body accepted on any route (bytes); larger is a 413, "
                                    "refused before it is read")
    sim_docs_enabled: bool = Field(default=False, description="serve /docs, /redoc and "
                                   "/openapi.json (development only: the pages load scripts "
                                   "from a CDN)")

    sim_fault_rate_limit_prob: float = Field(default=0.0, ge=0, le=1)
    sim_fault_http_5xx_prob: float = Field(default=0.0, ge=0, le=1)
    sim_fault_timeout_prob: float = Field(default=0.0, ge=0, le=1)
    sim_fault_timeout_s: float = Field(default=15.0, ge=0,
                                       description="response delay of an injected timeout")
    sim_fault_latency_ms: float = Field(default=0.0, ge=0)
    sim_fault_ws_drop_prob: float = Field(default=0.0, ge=0, le=1)

    def api_keys(self) -> dict[str, str]:
        """``{api_key: secret}`` for signature checks (values stay out of logs)."""
        return {self.sim_api_key.get_secret_value(): self.sim_api_secret.get_secret_value()}

    def uses_dev_credentials(self) -> bool:
        return self.sim_api_key.get_secret_value() == DEFAULT_DEV_KEY
