"""Risk settings (``TM_RISK_*``; shared fields ``TM_*``) and the domain parameters built from
them."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from tm_common.bus.signing import signing_key
from tm_common.bus.streams import RISK_BREAKER, RISK_COMMAND, RISK_ORDER
from tm_common.endpoints import EXCHANGE_SIM_REST
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings

from tm_risk.domain.params import BreakerParams, LotFilter, RiskParams


class RiskSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE_ENV_PREFIXES["risk"])
    env_names: ClassVar[Mapping[str, str]] = {"cooldown_secs": "cooldown_s",
                                           "join_timeout_secs": "join_timeout_s"}
    service_name: str = "risk"
    http_port: int = SERVICE_PORTS["risk"]

    # its own admin token (tm_common.admin_tokens), over the shared TM_ADMIN_TOKEN
    own_admin_token: ClassVar[tuple[str, str] | None] = ("risk_admin_token", "TM_RISK_ADMIN_TOKEN")
    risk_admin_token: SecretStr | None = Field(default=None, description="its own admin token "
                                            "(TM_RISK_ADMIN_TOKEN); overrides TM_ADMIN_TOKEN")

    # HMAC keys of the signed streams it produces or verifies (tm_common.bus.signing)
    signing_key_risk_order: SecretStr | None = signing_key(RISK_ORDER)
    signing_key_risk_command: SecretStr | None = signing_key(RISK_COMMAND)
    signing_key_risk_breaker: SecretStr | None = signing_key(RISK_BREAKER)
    # sizing
    min_notional_usdt: Decimal = Field(default=Decimal(10), ge=0, description="skip smaller deltas")
    min_delta_fraction: float = Field(default=0.002, ge=0, description="skip deltas below this "
                                      "fraction of equity")
    # the venue's lot filters (tm_risk/instruments.py): a recorded file, else the venue's REST
    instruments_file: str | None = Field(default=None, description="a recorded "
                                         "/v5/market/instruments-info answer (JSON); when set, "
                                         "the venue is not asked")
    venue_rest_url: str = Field(default=EXCHANGE_SIM_REST, description="the venue whose public "
                                "/v5/market/instruments-info gives the lot filters: the sim "
                                "(default), Bybit testnet or mainnet (no key needed)")
    venue_timeout_s: float = Field(default=10.0, gt=0, description="per instruments-info request")
    delisting_lead_s: float = Field(default=86_400.0, ge=0, description="a delisting the venue "
                                    "has scheduled (deliveryTime): no new exposure at once, and "
                                    "flat from this long before it")
    instruments_refresh_s: float = Field(default=86_400.0, ge=0, description="read the venue's "
                                         "filters again this often (0 = at start only)")
    # limits
    max_fraction: float = Field(default=1.0, ge=0, description="|target| per instrument")
    instrument_max_fraction: dict[str, float] = Field(default_factory=dict)
    max_notional_usdt: Decimal = Field(default=Decimal(1_000_000), gt=0)
    gross_cap: float = Field(default=2.0, gt=0, description="Σ|fraction| cap")
    net_cap: float = Field(default=1.5, gt=0, description="|Σ fraction| cap")
    # allocation and VaR
    window_bars: int = Field(default=180, ge=2, description="rolling 4h returns for HRP and VaR")
    hrp_min_obs: int = Field(default=30, ge=2)
    var_horizon_bars: int = Field(default=6, ge=1, description="6 x 4h = 1 day")
    var_confidence: float = Field(default=0.99, gt=0, lt=1)
    var_limit: float = Field(default=0.05, gt=0, description="fraction of equity")
    var_min_obs: int = Field(default=60, ge=2)
    var_min_scale: float = Field(default=0.1, gt=0, le=1)
    # breaker
    drawdown_limit: float = Field(default=0.05, gt=0, lt=1)
    stale_intervals: int = Field(default=2, ge=1)
    exec_failure_limit: int = Field(default=3, ge=1)
    cooldown_secs: float = Field(default=86_400.0, ge=0)
    hold_bars: int = Field(default=6, ge=1)
    half_open_factor: float = Field(default=0.5, ge=0, le=1)
    loss_tolerance: float = Field(default=0.001, ge=0)
    # loss limits that do not reset when the breaker closes (0 = off); see domain/loss_limits.py
    daily_loss_limit: float = Field(default=0.04, ge=0, lt=1, description="trip when the loss "
                                    "since the UTC day's first snapshot exceeds this fraction")
    cumulative_loss_limit: float = Field(default=0.25, ge=0, lt=1, description="trip when the "
                                         "loss since inception or the last recorded reset "
                                         "exceeds this fraction")
    # join: decide bar t's targets together, against snapshot t (order-independent)
    join_targets: bool = Field(default=True, description="wait for every symbol's target of a "
                               "bar and the portfolio snapshot of that bar, then decide them in "
                               "symbol order")
    join_timeout_secs: float = Field(default=60.0, ge=0, description="a watchdog tick this long "
                                     "after a bar's close decides an incomplete set of targets")
    # service
    mode: str = Field(default="live", description="live/testnet/paper run the wall-clock "
                      "watchdog; replay/backtest (historical time) never do")
    stale_check_interval_s: float = Field(default=60.0, ge=0, description="live watchdog on wall "
                                          "time; 0 disables it (replay, backtest)")
    admin_wait_s: float = Field(default=2.0, ge=0, description="how long a breaker POST waits "
                                "for the handler to apply the command")

    @property
    def watchdog_enabled(self) -> bool:
        """The live wall-clock stale check runs only on live time with a positive interval."""
        return self.stale_check_interval_s > 0 and self.mode.lower() not in ("replay", "backtest")

    def params(self, instruments: Mapping[str, LotFilter] | None = None) -> RiskParams:
        """The frozen domain parameters with ``instruments`` (the venue's lot filters; none by
        default: the service loads them at start, :mod:`tm_risk.instruments`)."""
        return RiskParams(
            symbols=self.symbols, instruments=dict(instruments or {}),
            interval_ms=self.interval_min * 60_000, min_notional_usdt=self.min_notional_usdt,
            min_delta_fraction=self.min_delta_fraction, max_fraction=self.max_fraction,
            instrument_max_fraction=dict(self.instrument_max_fraction),
            max_notional_usdt=self.max_notional_usdt, gross_cap=self.gross_cap,
            net_cap=self.net_cap, window_bars=self.window_bars, hrp_min_obs=self.hrp_min_obs,
            var_horizon_bars=self.var_horizon_bars, var_confidence=self.var_confidence,
            var_limit=self.var_limit, var_min_obs=self.var_min_obs,
            var_min_scale=self.var_min_scale,
            breaker=BreakerParams(
                drawdown_limit=self.drawdown_limit, stale_intervals=self.stale_intervals,
                exec_failure_limit=self.exec_failure_limit,
                cooldown_ms=int(self.cooldown_secs * 1000), hold_bars=self.hold_bars,
                half_open_factor=self.half_open_factor, loss_tolerance=self.loss_tolerance,
                daily_loss_limit=self.daily_loss_limit,
                cumulative_loss_limit=self.cumulative_loss_limit),
            join_targets=self.join_targets, join_timeout_ms=int(self.join_timeout_secs * 1000),
            delisting_lead_ms=int(self.delisting_lead_s * 1000))
