"""Ingest settings (``TM_INGEST_*``; shared fields such as ``TM_MODE`` are ``TM_*``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from tm_common.endpoints import BYBIT_MAINNET_PUBLIC_WS as MAINNET_WS
from tm_common.endpoints import BYBIT_MAINNET_REST as MAINNET_REST
from tm_common.endpoints import DERIBIT
from tm_common.ports import SERVICE_PORTS
from tm_common.settings import SERVICE_ENV_PREFIXES, CommonSettings


class IngestSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE_ENV_PREFIXES["ingest"])
    service_name: str = "ingest"
    http_port: int = SERVICE_PORTS["ingest"]

    # its own admin token (tm_common.admin_tokens), over the shared TM_ADMIN_TOKEN
    own_admin_token: ClassVar[tuple[str, str] | None] = ("sim_admin_token",
                                                         "TM_INGEST_SIM_ADMIN_TOKEN")
    sim_admin_token: SecretStr | None = Field(default=None, description="the simulator's admin "
                                           "token, sent to drive its clock; overrides TM_ADMIN_TOKEN")

    mode: Literal["live", "replay", "off"] = Field(
        default="live", description="live = Bybit WS + REST backfill; replay = history; off = "
        "serve endpoints only")
    bybit_rest_url: str = Field(default=MAINNET_REST, description="mainnet, testnet or the sim")
    bybit_ws_url: str = Field(default=MAINNET_WS, description="public linear WS URL")
    deribit_url: str = DERIBIT
    dvol_poll_s: float = Field(default=300.0, gt=0, description="0 disables the DVOL poller")
    dvol_enabled: bool = True
    funding_enabled: bool = Field(default=True, description="live: poll settled funding rates; "
                                  "replay: publish the shipped funding")
    funding_poll_s: float = Field(default=600.0, gt=0, description="seconds between polls of "
                                  "/v5/market/funding/history (rates settle every 8 h)")
    funding_wait_s: float = Field(default=60.0, ge=0, description="live: a bar closing at a "
                                  "funding settlement waits up to this long after its close "
                                  "for that rate to be published first; 0 = no wait")
    mark_poll_s: float = Field(default=60.0, ge=0, le=60, description="live: seconds between "
                               "polls of /v5/market/tickers for intra-bar marks on md.mark "
                               "(at most 60); 0 = off. Replay never polls")
    backfill_bars: int = Field(default=500, ge=1, description="history fetched on a cold start")
    backfill_start_ms: int | None = Field(default=None, description="cold-start backfill from here "
                                          "instead of now − backfill_bars")
    ws_ping_s: float = Field(default=20.0, gt=0)
    ws_dead_after_pings: float = Field(default=3.0, ge=2, description="read deadline of the public "
                                     "WebSocket in ping intervals: nothing received (no kline, "
                                     "no pong) for this many × ws_ping_s → reconnect")
    replay_start_ms: int | None = None
    replay_end_ms: int | None = None
    replay_lockstep: bool = True
    replay_pace_s: float = Field(default=0.0, ge=0, description="paced mode: seconds per bar time")
    replay_timeout_s: float = Field(default=120.0, gt=0, description="lockstep stall limit")
    replay_venue_url: str | None = Field(default=None, description="exchange sim to step in "
                                         "lockstep: POST <url>/sim/clock before each bar time")
    history_dir: str | None = Field(default=None, description="CSV folder; default data/history")
    db_enabled: bool = True
