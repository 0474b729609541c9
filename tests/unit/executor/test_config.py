"""Executor settings from TM_ variables: lists, decimals and secrets."""

from decimal import Decimal

from tm_common.endpoints import EXCHANGE_SIM_PRIVATE_WS, EXCHANGE_SIM_REST
from tm_common.logging import settings_secrets
from tm_executor.config import ExecutorSettings


def test_defaults_are_the_simulator_unarmed_and_three_symbols(monkeypatch):
    for k in ("TM_SYMBOLS", "TM_EXECUTOR_BYBIT_REST_URL", "TM_EXECUTOR_BYBIT_PRIVATE_WS_URL",
              "TM_LIVE_TRADING"):
        monkeypatch.delenv(k, raising=False)
    s = ExecutorSettings()
    assert s.bybit_rest_url == EXCHANGE_SIM_REST and s.bybit_private_ws_url == EXCHANGE_SIM_PRIVATE_WS
    assert s.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT") and s.group == "executor"
    a = s.arming()
    assert (a.venue, a.mode) == ("simulator", "off")


def test_env_lists_decimals_and_secrets(monkeypatch):
    monkeypatch.setenv("TM_SYMBOLS", "btcusdt, ETHUSDT")
    monkeypatch.setenv("TM_EXECUTOR_LEVERAGE", "2.5")
    monkeypatch.setenv("TM_EXECUTOR_BYBIT_API_KEY", "k-123")
    monkeypatch.setenv("TM_EXECUTOR_BYBIT_API_SECRET", "s-456")
    s = ExecutorSettings()
    assert s.symbols == ("BTCUSDT", "ETHUSDT") and s.leverage == Decimal("2.5")
    assert "s-456" not in repr(s) and "k-123" not in repr(s)
    assert set(settings_secrets(s)) == {"k-123", "s-456"}     # redacted from logs and /status
    monkeypatch.setenv("TM_SYMBOLS", '["SOLUSDT"]')
    assert ExecutorSettings().symbols == ("SOLUSDT",)
