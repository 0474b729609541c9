"""Settings → parameters; the watchdog only on live time; the token never prints."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tm_risk.config import RiskSettings


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("TM_SYMBOLS", "btcusdt, ethusdt")
    monkeypatch.setenv("TM_RISK_INSTRUMENT_MAX_FRACTION", '{"BTCUSDT": 0.4}')
    monkeypatch.setenv("TM_RISK_COOLDOWN_S", "3600")
    monkeypatch.setenv("TM_RISK_VAR_LIMIT", "0.03")
    monkeypatch.setenv("TM_ADMIN_TOKEN", "hunter2-token")
    s = RiskSettings(redis_url="redis://unused")
    p = s.params()
    assert p.symbols == ("BTCUSDT", "ETHUSDT") and p.fraction_cap("BTCUSDT") == 0.4
    assert p.fraction_cap("ETHUSDT") == 1.0 and p.var_limit == 0.03
    assert p.breaker.cooldown_ms == 3_600_000 and p.interval_ms == 4 * 3600 * 1000
    assert p.instruments["BTCUSDT"].qty_step == Decimal("0.001")
    assert "hunter2-token" not in repr(s) and "hunter2-token" not in str(s.model_dump())


@pytest.mark.parametrize(("mode", "interval", "on"), [
    ("live", 60, True), ("paper", 60, True), ("replay", 60, False), ("BACKTEST", 60, False),
    ("live", 0, False)])
def test_watchdog_only_on_live_time(mode, interval, on):
    s = RiskSettings(redis_url="redis://unused", mode=mode, stale_check_interval_s=interval)
    assert s.watchdog_enabled is on


def test_unknown_symbol_is_refused():
    with pytest.raises(ValueError, match="no lot filter for DOGEUSDT"):
        RiskSettings(redis_url="redis://unused", symbols=("DOGEUSDT",)).params()
