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
    monkeypatch.setenv("TM_ADMIN_TOKEN", "hunter2-token-0123456789ab")
    s = RiskSettings(redis_url="redis://unused")
    p = s.params()
    assert p.symbols == ("BTCUSDT", "ETHUSDT") and p.fraction_cap("BTCUSDT") == 0.4
    assert p.fraction_cap("ETHUSDT") == 1.0 and p.var_limit == 0.03
    assert p.breaker.cooldown_ms == 3_600_000 and p.interval_ms == 4 * 3600 * 1000
    assert p.instruments == {}                    # the venue's, loaded by the service
    assert s.venue_rest_url == "http://127.0.0.1:8108" and s.instruments_refresh_s == 86_400
    assert "hunter2-token-0123456789ab" not in repr(s) and "hunter2-token-0123456789ab" not in str(s.model_dump())


@pytest.mark.parametrize(("mode", "interval", "on"), [
    ("live", 60, True), ("paper", 60, True), ("replay", 60, False), ("BACKTEST", 60, False),
    ("live", 0, False)])
def test_watchdog_only_on_live_time(mode, interval, on):
    s = RiskSettings(redis_url="redis://unused", mode=mode, stale_check_interval_s=interval)
    assert s.watchdog_enabled is on


def test_a_symbol_the_venue_does_not_list_keeps_risk_not_ready(tmp_path):
    """The lot filters come from the venue (here a recorded instruments-info answer): a traded
    symbol it does not list is named by the readiness check, and nothing is decided."""
    import asyncio
    import json

    from tm_common.bus import InMemoryBus
    from tm_common.errors import NotReady
    from tm_common.instruments import DEFAULT_INSTRUMENTS
    from tm_risk.app import build

    f = tmp_path / "instruments.json"
    f.write_text(json.dumps({"retCode": 0, "retMsg": "OK", "result": {
        "category": "linear", "list": [DEFAULT_INSTRUMENTS["BTCUSDT"].info()]}}))
    parts = build(RiskSettings(redis_url="redis://unused", symbols=("BTCUSDT", "DOGEUSDT"),
                               instruments_file=str(f)), bus=InMemoryBus())
    asyncio.run(parts.warm_up())
    assert parts.handler.params.instruments["BTCUSDT"].qty_step == Decimal("0.001")
    with pytest.raises(NotReady, match=f"no lot filters for DOGEUSDT from file {f}"):
        parts.ready_checks["instruments"]()


def test_a_bad_instruments_file_is_named(tmp_path):
    import asyncio

    from tm_common.bus import InMemoryBus
    from tm_risk.app import build

    f = tmp_path / "bad.json"
    f.write_text('{"retCode": 10001, "retMsg": "params error"}')
    parts = build(RiskSettings(redis_url="redis://unused", instruments_file=str(f)),
                  bus=InMemoryBus())
    with pytest.raises(ValueError, match="retCode 10001: params error"):
        asyncio.run(parts.warm_up())
