"""The in-process backtest feeds funding to the signal service: its replay publishes the shipped
funding on ``md.funding`` at each settle time (as the mesh's replay does), the signal consumer
reads it, and a funding-using model sees fresh funding on every bar (none goes stale)."""

from __future__ import annotations

import pytest
from tm_app import backtest
from tm_app.backtest import RunConfig, run_backtest
from tm_common.bus.streams import MD_FUNDING, SIGNAL_TL
from tm_common.db import make_engine
from tm_common.db.migrate import migrate_async
from tm_common.history import load_bars
from tm_common.models.registry import ModelRegistry
from tm_signal.testing import signal_bundle

START, N = 5000, 30


@pytest.mark.parametrize("fed", [True, False], ids=["funding", "control-without"])
async def test_backtest_signals_see_fresh_funding(tmp_path, monkeypatch, fed):
    if not fed:
        monkeypatch.setattr(backtest, "history_funding", lambda *a, **k: [])
    bars = load_bars("BTCUSDT")
    url = f"sqlite+aiosqlite:///{tmp_path}/tm.db"
    await migrate_async(url)
    engine = make_engine(url)
    reg = ModelRegistry(engine)
    bundle = signal_bundle("v1", first_bar_ms=bars[START - 250].open_time_ms, seed=1)
    await reg.register("signal", "v1", bundle, data_hash="test", features=[], params={}, seed=0,
                       metrics={})
    await reg.promote("v1", "initial")
    await engine.dispose()
    rec = await run_backtest(RunConfig(start_ms=bars[START].open_time_ms,
                                       end_ms=bars[START + N - 1].open_time_ms,
                                       database_url=url))
    funding = rec.streams[MD_FUNDING]
    sigs = [e.body for e in rec.streams[SIGNAL_TL]]
    assert len(sigs) == 3 * N
    if fed:
        assert {e.body.instrument for e in funding} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
        assert len(funding) >= 3 * (N // 2)             # one rate per 8 h per instrument
        assert {s.reason for s in sigs} == {"ok"}, {s.reason for s in sigs}
    else:       # the warm-up's last rate ages past 1 day: withheld, flagged
        assert not funding
        assert sum("stale funding" in s.reason for s in sigs) > N
