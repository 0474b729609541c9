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

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

# The executor's own stream: fills and order states observed by the private WebSocket and the
# poller, handed to the one handler that publishes to exec.report (single writer, atomic state).
# It belongs in tm_common.bus.streams (and ALL_STREAMS, for the lockstep idle probe).
from tm_common.bus.streams import EXEC_VENUE  # noqa: E402,F401  (re-exported)
from tm_common.endpoints import BYBIT_MAINNET_PRIVATE_WS as MAINNET_PRIVATE_WS  # noqa: F401
from tm_common.endpoints import BYBIT_MAINNET_REST as MAINNET_REST  # noqa: F401
from tm_common.endpoints import EXCHANGE_SIM_PRIVATE_WS, EXCHANGE_SIM_REST
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings

if TYPE_CHECKING:
    from tm_executor.domain.arming import Arming


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
    preflight_retry_s: float = Field(default=5.0, gt=0)
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    fill_poll_interval_s: float = Field(default=10.0, gt=0)
    ws_enabled: bool = True
    ws_ping_s: float = Field(default=20.0, gt=0)


    # Test hook (integration tests only): os._exit(99) right after the N-th place_order call
    # returned, before its answer is handled or committed. 0 = off.
    test_crash_after_place: int = Field(default=0, ge=0)
    # Chaos hook (``make chaos`` only; unset = off): while this file exists, the next
    # place_order that returns deletes it and the process kills itself with SIGKILL, before the
    # answer is handled or committed. A drill arms one crash by creating the file.
    chaos_crash_after_send_file: str | None = None

    def startup_check(self) -> None:
        """Run by ``serve`` before anything starts: the arming check (one line, exit 2)."""
        self.arming()

    def arming(self) -> Arming:
        """The venue and mode (:func:`tm_executor.domain.arming.check_arming`); raises
        ``ConfigError`` when ``TM_LIVE_TRADING`` does not allow the configured venue."""
        from tm_executor.domain.arming import check_arming

        return check_arming(self.bybit_rest_url, self.live_trading,
                            self.bybit_private_ws_url if self.ws_enabled else None)
