"""Replays warm up before ``--start`` (tm_app.warmup), and ``tm demo`` on an unshipped symbol.

A 10-day window (60 bars) of the synthetic ``ZZZUSDT`` with a production model that trades:
without a warm-up risk's VaR never has its 60 returns, so every position it would open is
refused and the window does not trade; with the default warm-up (200 bars before ``--start``)
the window is full at the first bar and it trades. The warm-up gives no signal and no order,
and the report's record is the window's only. The mesh replay with the warm-up equals the
in-process backtest with it.

``tm demo --symbols ZZZUSDT --history-dir …`` on an empty registry trains ZZZUSDT (not the
shipped three) from that folder, or says in one ``error:`` line what to do when it cannot.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tm_common.testing.instrument_history import (
    UNSHIPPED_SYMBOL,
    unshipped_spec,
    write_history,
    write_instrument,
)

from .conftest import BAR_MS, HISTORY_START_MS, START_MS, clean_env, window_config

pytestmark = pytest.mark.slow
SYM = UNSHIPPED_SYMBOL
BARS = 60                                     # 10 days
TM = Path(sys.executable).parent / "tm"


@pytest.fixture(scope="module")
def trained(unshipped_trained):
    """(ZZZUSDT's history folder with BTCUSDT's, the database URL of a registry whose production
    signal model was trained on ZZZUSDT up to the window's start)."""
    history, env = unshipped_trained
    return history, env["TM_DATABASE_URL"]


def _config(history: Path, db: str):
    return window_config(history, db, (SYM,), BARS)


def _var_refusals(record) -> list[str]:
    return [r.reason for r in record.rejections if "VaR needs" in r.reason]


def test_a_ten_day_window_trades_with_warmup_and_not_without(trained):
    from tm_app.backtest import run_backtest
    from tm_app.warmup import default_warmup_bars, plan, trade_start_ms, trim

    history, db = trained
    cold_cfg, cold = plan(_config(history, db), 0)
    assert cold_cfg == _config(history, db) and cold.bars == 0
    cold_rec = asyncio.run(run_backtest(cold_cfg))
    assert len(cold_rec.bars) == BARS
    assert cold_rec.orders == [], "a cold 10-day window must not trade (VaR has no window)"
    assert _var_refusals(cold_rec), "the cold window's positions are refused for VaR"

    cfg, warm = plan(_config(history, db))
    assert warm.requested == default_warmup_bars() == 200 and warm.bars == 200
    assert cfg.start_ms == START_MS - 200 * BAR_MS and trade_start_ms(cfg) == START_MS
    full = asyncio.run(run_backtest(cfg))
    assert len(full.bars) == 200 + BARS                     # the warm-up went through the mesh
    assert len(full.regimes) == 200 + BARS                  # regime filtered it
    assert all(s.bar_time_ms >= START_MS for s in full.signals)     # no signal in the warm-up
    assert all(o.bar_time_ms >= START_MS for o in full.orders)      # so no order either
    rec = trim(full, START_MS)
    assert len(rec.bars) == BARS and rec.snapshots[0].bar_time_ms == START_MS
    assert rec.orders and rec.fills, "with the warm-up the 10-day window trades"
    assert _var_refusals(rec) == [], "risk's VaR window is full from the first bar"
    assert rec.orders[0].bar_time_ms < START_MS + 10 * BAR_MS


def test_short_history_before_start_is_used_and_said(trained):
    from tm_app.warmup import plan

    history, db = trained
    near = HISTORY_START_MS + 50 * BAR_MS
    cfg, warm = plan(_config(history, db).__class__(
        start_ms=near, end_ms=near + BAR_MS, database_url=db, symbols=(SYM,),
        history_dir=str(history)))
    assert (warm.requested, warm.bars, warm.short) == (200, 50, True)
    assert cfg.start_ms == HISTORY_START_MS
    assert "50 bars" in warm.describe() and "shorter" in warm.describe()
    with pytest.raises(ValueError, match="--warmup-bars must be >= 0"):
        plan(cfg, -1)


def test_mesh_replay_with_warmup_equals_the_backtest(trained, redis_url, tmp_path):
    from tm_app.backtest import run_backtest
    from tm_app.mesh import run_mesh
    from tm_app.warmup import plan, trim

    history, db = trained
    cfg, warm = plan(_config(history, db))
    backtest = asyncio.run(run_backtest(cfg))
    mesh = run_mesh(cfg, redis_url=redis_url, data_dir=tmp_path, port_offset=650,
                    log=lambda m: None).record
    b, m = backtest.trading_view(), mesh.trading_view()
    assert b["orders"], "the window must trade"
    for key in ("orders", "fills", "equity", "tiers", "regimes"):
        assert m[key] == b[key], f"{key} differ between the mesh and the backtest"
    assert trim(mesh, START_MS).trading_view() == trim(backtest, START_MS).trading_view()


def test_tm_demo_on_an_unshipped_symbol_trains_that_symbol(trained, tmp_path):
    """An empty registry: `tm demo --symbols ZZZUSDT --history-dir …` trains ZZZUSDT from that
    folder (not BTC/ETH/SOL from the shipped files), warms up, says where its streams are."""
    history, _ = trained
    own = tmp_path / "history"                 # only ZZZUSDT: no BTCUSDT beside it
    own.mkdir()
    for f in history.glob(f"{SYM}_*"):
        shutil.copy(f, own / f.name)
    env = clean_env(tmp_path)
    try:
        p = subprocess.run([str(TM), "demo", "--symbols", SYM, "--history-dir", str(own),
                            "--start", "2024-06-01", "--end", "2024-06-10", "--fast-train",
                            "--port-offset", "750", "--out", str(tmp_path / "report")],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
                           check=False)
    finally:
        subprocess.run([str(TM), "down"], env=env, cwd=tmp_path, capture_output=True, timeout=60)
    out = " ".join(p.stdout.split())          # the console folds long lines
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"training {SYM} on the history in {own}" in out
    assert f"{SYM} model" in out and "BTCUSDT model" not in out
    assert "warm-up: 200 bars" in out
    (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("streams, while it runs: ")]
    assert "XREVRANGE tmrun:" in line and "md.bar" in line
    import json
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    assert doc["counts"]["bars"] == BARS and doc["meta"]["warm-up"].startswith("200 bars")


def test_tm_demo_that_cannot_train_the_symbol_says_what_to_do_in_one_line(tmp_path):
    short = tmp_path / "history"
    write_history(short, start_ms=START_MS - 240 * BAR_MS, n_bars=300)   # 40 days before
    write_instrument(short, unshipped_spec())
    env = clean_env(tmp_path)
    try:
        p = subprocess.run([str(TM), "demo", "--symbols", SYM, "--history-dir", str(short),
                            "--start", "2024-06-01", "--end", "2024-06-10", "--fast-train",
                            "--port-offset", "760"], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=600, check=False)
    finally:
        subprocess.run([str(TM), "down"], env=env, cwd=tmp_path, capture_output=True, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, p.stderr
    assert f"training {SYM} from the history in {short} failed" in errors[0]
    assert "--history-dir" in errors[0] and f"tm train --instruments {SYM}" in errors[0]
    assert "services ready" not in p.stdout                   # nothing started


def test_a_registry_without_a_requested_symbol_says_it_trades_flat(trained, capsys):
    import tm_app.cli as cli

    _, db = trained
    cli._ensure_models(db, fast=True, symbols=(SYM, "BTCUSDT"))
    out = " ".join(capsys.readouterr().out.split())
    assert "models: using the registry's" in out
    assert f"was trained on {SYM}, not on BTCUSDT: those trade flat" in out
    cli._ensure_models(db, fast=True, symbols=(SYM,))
    assert "trade flat" not in capsys.readouterr().out
