"""Deliberate arming: a real venue needs TM_LIVE_TRADING; anything else is one refusal line."""

from __future__ import annotations

import pytest
from tm_common.endpoints import (
    BYBIT_MAINNET_PRIVATE_WS,
    BYBIT_MAINNET_REST,
    BYBIT_TESTNET_PRIVATE_WS,
    BYBIT_TESTNET_REST,
)
from tm_common.errors import ConfigError
from tm_executor.domain.arming import check_arming, venue_of

SIM = "http://127.0.0.1:8108"


@pytest.mark.parametrize("url, venue", [
    (BYBIT_MAINNET_REST, "mainnet"), ("https://api.bytick.com", "mainnet"),
    (BYBIT_MAINNET_PRIVATE_WS, "mainnet"), ("https://api.bybit.nl", "mainnet"),
    ("https://API.Bybit.com/", "mainnet"), ("https://bybit-proxy:8443", "mainnet"),
    (BYBIT_TESTNET_REST, "testnet"), (BYBIT_TESTNET_PRIVATE_WS, "testnet"),
    ("https://api-demo.bybit.com", "testnet"),
    (SIM, "simulator"), ("http://exchange-sim:8108", "simulator"),
    ("ws://127.0.0.1:8108/v5/private", "simulator"), ("https://example.com/bybit", "simulator"),
])
def test_venue_of_the_url(url, venue):
    assert venue_of(url) == venue


@pytest.mark.parametrize("url, ws, mode, venue", [
    (SIM, None, None, "simulator"), (SIM, None, "", "simulator"), (SIM, None, "armed", "simulator"),
    (BYBIT_TESTNET_REST, BYBIT_TESTNET_PRIVATE_WS, "testnet", "testnet"),
    (BYBIT_TESTNET_REST, None, "ARMED ", "testnet"),
    (BYBIT_MAINNET_REST, BYBIT_MAINNET_PRIVATE_WS, "armed", "mainnet"),
])
def test_allowed(url, ws, mode, venue):
    a = check_arming(url, mode, ws)
    assert a.venue == venue and a.mode == (mode or "off").strip().lower()


@pytest.mark.parametrize("url, ws, mode, fragment", [
    (BYBIT_MAINNET_REST, None, None, "TM_LIVE_TRADING=armed"),
    (BYBIT_MAINNET_REST, None, "off", "TM_LIVE_TRADING=armed"),
    (BYBIT_MAINNET_REST, None, "testnet", "TM_LIVE_TRADING=armed"),
    ("https://api.bytick.com", None, "yes", "is not a mode"),
    (BYBIT_TESTNET_REST, None, "off", "TM_LIVE_TRADING=testnet (or armed)"),
    (SIM, None, "live", "TM_LIVE_TRADING='live' is not a mode"),
    (BYBIT_TESTNET_REST, BYBIT_MAINNET_PRIVATE_WS, "armed", "private WebSocket URL is mainnet"),
    (SIM, BYBIT_MAINNET_PRIVATE_WS, "off", "TM_EXECUTOR_BYBIT_PRIVATE_WS_URL points at Bybit "
                                           "mainnet"),
])
def test_refused_with_one_line_naming_tm_live_trading(url, ws, mode, fragment):
    with pytest.raises(ConfigError) as e:
        check_arming(url, mode, ws)
    msg = str(e.value)
    assert fragment in msg and "TM_LIVE_TRADING" in msg and "\n" not in msg
