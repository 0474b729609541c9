"""Executor settings (``TM_EXECUTOR_*``; shared fields ``TM_*``), built once and passed down.

The venue is configuration: ``bybit_rest_url`` is the exchange sim (``http://127.0.0.1:8108``,
the default), testnet or mainnet; a real venue needs ``TM_LIVE_TRADING`` (``testnet`` or
``armed``: :mod:`tm_executor.domain.arming`, checked at start before any network call). pybit builds ``https://api.bybit.com`` itself, the client then points
``session.endpoint`` at this URL. Credentials are ``SecretStr``: the service base redacts their
values from every log line and from ``/status``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

# The executor's own stream: fills and order states observed by the private WebSocket and the
# poller, handed to the one handler that publishes to exec.report (single writer, atomic state).
# It belongs in tm_common.bus.streams (and ALL_STREAMS, for the lockstep idle probe).
from tm_common.bus.signing import signing_key
from tm_common.bus.streams import (
    EXEC_VENUE,  # noqa: E402,F401  (re-exported)
    RISK_BREAKER,
    RISK_ORDER,
)
from tm_common.endpoints import BYBIT_MAINNET_PRIVATE_WS as MAINNET_PRIVATE_WS  # noqa: F401
from tm_common.endpoints import BYBIT_MAINNET_REST as MAINNET_REST  # noqa: F401
from tm_common.endpoints import EXCHANGE_SIM_PRIVATE_WS, EXCHANGE_SIM_REST
from tm_common.errors import ConfigError
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings

if TYPE_CHECKING:
    from tm_executor.domain.arming import Arming
    from tm_executor.domain.guard import GuardLimits

LIVE_MODES = ("live", "testnet", "paper")
#: The venue stop's loss ratio in the paper and live modes: twice risk's default breaker
#: drawdown (5 %), so the venue acts only on a loss a running mesh would not have allowed.
DEFAULT_VENUE_STOP_LOSS = 0.10


class ExecutorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE_ENV_PREFIXES["executor"])
    service_name: str = "executor"
    http_port: int = SERVICE_PORTS["executor"]

    bybit_rest_url: str = Field(default=EXCHANGE_SIM_REST, description="the sim (default), "
                                "testnet or mainnet (the last two need TM_LIVE_TRADING)")
    bybit_private_ws_url: str = Field(default=EXCHANGE_SIM_PRIVATE_WS,
                                      description="private WS (execution topic); the sim serves "
                                      "ws://HOST:PORT/v5/private")
    bybit_api_key: SecretStr | None = None
    bybit_api_secret: SecretStr | None = None
    recv_window_ms: int = Field(default=5000, ge=1)
    venue_timeout_s: float = Field(default=5.0, gt=0, description="per HTTP request, seconds")
    leverage: Decimal = Field(default=Decimal(3), gt=0, description="set on every symbol at start")

    intent_deadline_s: float = Field(default=30.0, gt=0, description="venue retries per handling "
                                     "of one intent before it is left for a later retry, s")
    place_attempts: int = Field(default=6, ge=1, description="place_order calls per handling")
    retry_backoff_s: float = Field(default=0.05, gt=0)
    max_backoff_s: float = Field(default=2.0, gt=0)
    rate_limit_max_wait_s: float = Field(default=5.0, gt=0,
                                         description="cap on a wait until the rate-limit reset")
    fill_wait_s: float = Field(default=5.0, ge=0, description="how long the handler waits for a "
                               "market order's executions before leaving them to WS/polling, s")
    order_history_fallback: bool = Field(default=True, description="look an orderLinkId up in "
                                         "order/history when order/realtime lacks it")

    preflight_wait_s: float = Field(default=10.0, ge=0, description="an intent waits this long "
                                    "for the preflight, then is retried later")
    preflight_retry_s: float = Field(default=5.0, gt=0, description="cap of a failing "
                                     "preflight step's retry backoff, s (a fatal one: 6x)")
    preflight_backoff_s: float = Field(default=0.2, gt=0, description="first retry backoff of "
                                       "a failing preflight step, s (doubled, jittered)")
    max_clock_skew_ms: int = Field(default=5000, ge=1, description="refuse to trade (not ready) "
                                   "when the host clock is further than this from the venue's")
    clock_sync_interval_s: float = Field(default=300.0, gt=0, description="how often the venue's "
                                         "server time is measured again after the first sync")
    ip_ban_silence_s: float = Field(default=600.0, gt=0, description="after an HTTP 403 (IP "
                                    "ban) no venue request for this long; Bybit asks >= 600 s")
    link_salt: str | None = Field(default=None, description="pin the orderLinkId salt (8 of "
                                  "[a-z0-9]); unset: kept in Redis per account and deployment "
                                  "(tm_executor.links)")
    link_salt_random: bool | None = Field(default=None, description="draw the orderLinkId salt "
                                          "at random (once, then kept); unset: on a real venue "
                                          "(testnet, mainnet) yes, on the simulator no (a fixed "
                                          "salt: replays and the backtest name orders alike)")
    instruments_refresh_s: float = Field(default=86_400.0, gt=0, description="how often the "
                                         "venue's instruments-info is read again after the "
                                         "preflight; a change is published (InstrumentsChanged)")
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    balance_reconcile: bool | None = Field(default=None, description="compare the venue's "
                                           "USDT wallet balance with the portfolio's cash at "
                                           "each reconciliation and adopt a difference as an "
                                           "external flow (tm_executor.balance); unset: on in "
                                           "the paper and live modes, off in replay")
    balance_tolerance_usdt: Decimal = Field(default=Decimal("0.01"), ge=0, description="a "
                                            "smaller wallet difference is rounding, not a flow")
    venue_stop_loss: float | None = Field(default=None, ge=0, lt=1, description="the stop "
                                          "loss resting on the venue (tm_executor.stops): the "
                                          "venue closes a position that alone lost this part "
                                          "of the account's equity; 0 = none; unset: 0.10 in "
                                          "the paper and live modes, none in replay")
    stop_check_s: float = Field(default=30.0, gt=0, description="how often the positions' "
                                "venue stops are checked and their fills looked for, s (and "
                                "at once after each fill)")
    fill_poll_interval_s: float = Field(default=10.0, gt=0)
    ws_enabled: bool = True
    ws_ping_s: float = Field(default=20.0, gt=0)
    ws_dead_after_pings: float = Field(default=3.0, ge=2, description="read deadline of the "
                                       "private WebSocket in ping intervals: nothing (no "
                                       "message, no pong) for this many x ws_ping_s = "
                                       "half-open, reconnect")

    # HMAC keys of the signed streams it verifies (risk.order, risk.breaker) and of its own
    # exec.venue (tm_common.bus.signing); a real venue needs the risk.order key.
    signing_key_risk_order: SecretStr | None = signing_key(RISK_ORDER)
    signing_key_risk_breaker: SecretStr | None = signing_key(RISK_BREAKER)
    signing_key_exec_venue: SecretStr | None = signing_key(EXEC_VENUE)

    # The guard (tm_executor.domain.guard): the executor's own hard limits, separate from
    # risk's. Defaults sit far above what the demo trades (100k USDT equity) and far below a
    # forged 100-BTC order; set them to the account's size in production.
    large_fill_notional_usdt: Decimal = Field(default=Decimal(50_000), gt=0, description="a fill "
                                              "at least this large (qty x price) is counted in "
                                              "tm_executor_large_fills_total (alert "
                                              "TMLargeFill)")
    max_order_notional_usdt: Decimal = Field(default=Decimal(500_000), gt=0,
                                             description="per order: qty x price, USDT")
    max_position_notional_usdt: Decimal = Field(default=Decimal(1_000_000), gt=0,
                                                description="per instrument, after the fill")
    max_order_qty: dict[str, Decimal] = Field(default_factory=dict, description="per-order "
                                              "base-coin cap by symbol (JSON), e.g. "
                                              '{"BTCUSDT": 5}; absent = none')
    max_position_qty: dict[str, Decimal] = Field(default_factory=dict, description="per-"
                                                 "position base-coin cap by symbol (JSON)")
    max_intent_age_bars: int = Field(default=1, ge=0, description="refuse an intent whose bar "
                                     "is more than this many bars older than the newest known")


    # Test hook (integration tests only): os._exit(99) right after the N-th place_order call
    # returned, before its answer is handled or committed. 0 = off.
    test_crash_after_place: int = Field(default=0, ge=0)
    # Chaos hook (``make chaos`` only; unset = off): while this file exists, the next
    # place_order that returns deletes it and the process kills itself with SIGKILL, before the
    # answer is handled or committed. A drill arms one crash by creating the file.
    chaos_crash_after_send_file: str | None = None

    @field_validator("link_salt")
    @classmethod
    def _salt(cls, v: str | None) -> str | None:
        from tm_executor.domain.ids import check_salt

        return None if v is None else check_salt(v)

    def startup_check(self) -> None:
        """Run by ``serve`` before anything starts: the arming check and, on a real venue,
        the signing check (one line, exit 2)."""
        self.require_signing(self.arming())

    def require_signing(self, arming: Arming) -> None:
        """A real venue (testnet, mainnet) trades only on verified intents: without the
        ``risk.order`` and ``risk.breaker`` keys, ``ConfigError``."""
        if arming.venue == "simulator":
            return
        missing = [v for v, k in (("TM_EXECUTOR_SIGNING_KEY_RISK_ORDER", self.signing_key_risk_order),
                                  ("TM_EXECUTOR_SIGNING_KEY_RISK_BREAKER",
                                   self.signing_key_risk_breaker)) if k is None]
        if missing:
            raise ConfigError(f"trading on {arming.venue} needs signed intents: set "
                              f"{' and '.join(missing)} (the keys risk signs with)")

    def guard_limits(self) -> GuardLimits:
        from tm_executor.domain.guard import GuardLimits

        return GuardLimits(max_order_notional_usdt=self.max_order_notional_usdt,
                           max_position_notional_usdt=self.max_position_notional_usdt,
                           max_order_qty=dict(self.max_order_qty),
                           max_position_qty=dict(self.max_position_qty),
                           max_intent_age_bars=self.max_intent_age_bars,
                           interval_ms=self.interval_min * 60_000)

    @property
    def stop_loss_ratio(self) -> float:
        """The venue stop's loss ratio in effect (``venue_stop_loss``, else the mode's
        default: a replay's venue has no wall clock for the mesh to be down on, and its
        results stay comparable run to run)."""
        if self.venue_stop_loss is not None:
            return self.venue_stop_loss
        return DEFAULT_VENUE_STOP_LOSS if self.live_clock else 0.0

    @property
    def balance_check(self) -> bool:
        """Whether the wallet is compared with the portfolio's cash (``balance_reconcile``,
        or by the mode: a replay's venue is the recorded bars' own account)."""
        return self.live_clock if self.balance_reconcile is None else self.balance_reconcile

    @property
    def live_clock(self) -> bool:
        """True in the modes that follow the wall clock (the guard then also ages intents
        by the clock)."""
        return self.mode in LIVE_MODES

    def arming(self) -> Arming:
        """The venue and mode (:func:`tm_executor.domain.arming.check_arming`); raises
        ``ConfigError`` when ``TM_LIVE_TRADING`` does not allow the configured venue."""
        from tm_executor.domain.arming import check_arming

        return check_arming(self.bybit_rest_url, self.live_trading,
                            self.bybit_private_ws_url if self.ws_enabled else None)
