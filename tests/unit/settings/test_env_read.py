"""Settings read the renamed variables (and no longer the old ones), and ``to_env`` renders a
settings object into the environment that rebuilds it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from tm_common.settings import CommonSettings, env_names, to_env

from .conftest import SERVICE_SETTINGS


def test_join_timeouts_are_per_service(clean_env):
    risk, sizer = SERVICE_SETTINGS["risk"], SERVICE_SETTINGS["sizer"]
    clean_env.setenv("TM_RISK_JOIN_TIMEOUT_S", "0")
    clean_env.setenv("TM_SIZER_JOIN_TIMEOUT_S", "7")
    assert risk().join_timeout_secs == 0 and sizer().join_timeout_s == 7
    clean_env.setenv("TM_JOIN_TIMEOUT_SECS", "5")      # the old names reach nobody
    clean_env.setenv("TM_JOIN_TIMEOUT_S", "5")
    assert risk().join_timeout_secs == 0 and sizer().join_timeout_s == 7


def test_shared_fields_reach_every_service(clean_env):
    clean_env.setenv("TM_SYMBOLS", "btcusdt")
    clean_env.setenv("TM_MODE", "replay")
    clean_env.setenv("TM_LAG_POLL_INTERVAL_S", "0.5")
    for name in ("regime", "signal", "sizer", "risk", "executor", "portfolio", "ingest"):
        s = SERVICE_SETTINGS[name]()
        assert s.symbols == ("BTCUSDT",) and s.mode == "replay" and s.lag_poll_interval_s == 0.5


def test_kwargs_still_use_attribute_names(clean_env):
    s = SERVICE_SETTINGS["portfolio"](initial_equity=Decimal(5))
    assert s.initial_equity == Decimal(5)


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_to_env_round_trips(clean_env, name):
    cls = SERVICE_SETTINGS[name]
    values = {"redis_url": "redis://r:1/0", "namespace": "ns:", "data_dir": Path("/d"),
              "symbols": ("BTCUSDT", "ETHUSDT"), "http_port": 9001, "log_json": False}
    extra = {"exchange_sim": {"sim_symbols": ["BTCUSDT"], "sim_initial_balance": Decimal(7),
                              "sim_api_secret": "s3"},
             "risk": {"instrument_max_fraction": {"BTCUSDT": 0.4}, "join_timeout_secs": 0},
             "sizer": {"regime_fractions": {"Bull": 0.5}, "join_timeout_s": 3},
             "executor": {"bybit_api_key": "k", "order_history_fallback": False},
             "portfolio": {"initial_equity": Decimal(50000)},
             "ingest": {"replay_start_ms": 5, "mode": "off"}}.get(name, {})
    built = cls.from_values(**values, **extra)
    env = to_env(built)
    assert set(env) <= set(env_names(cls).values())
    for k, v in env.items():
        clean_env.setenv(k, v)
    again = cls()
    for field in built.model_fields_set:
        assert getattr(again, field) == getattr(built, field), field


def test_from_values_ignores_the_environment(clean_env):
    clean_env.setenv("TM_NAMESPACE", "from-env:")
    assert CommonSettings.from_values().namespace == "tm:"
    assert to_env(CommonSettings.from_values(namespace="x:")) == {"TM_NAMESPACE": "x:"}
