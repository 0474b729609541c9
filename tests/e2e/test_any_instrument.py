"""Any USDT perpetual end to end: a symbol the project does not ship (``ZZZUSDT``: a synthetic
history with a learnable momentum, and its own lot filters, a qty step of one whole coin and a
5 USDT minimum notional, recorded beside the history as ``ZZZUSDT_instrument.json``) trains,
backtests alone and next to BTCUSDT, and replays through the mesh with the same orders.

Every order risk sends respects the venue's filters it read from the venue (whole coins, at
least the minimum notional when it opens), so the venue refuses none of them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from tm_common.history import bars_file, funding_file, instrument_file
from tm_common.testing.instrument_history import (
    UNSHIPPED_SYMBOL,
    unshipped_spec,
    write_history,
    write_instrument,
)
from tm_common.testing.promote import force_signal_model

pytestmark = pytest.mark.slow
SYM = UNSHIPPED_SYMBOL
HISTORY_START_MS = 1_672_531_200_000          # 2023-01-01
TRAIN_END = "2024-06-01"
START_MS = 1_717_200_000_000                  # 2024-06-01 00:00 UTC
BARS = 90
# a test configuration (as in the parity test): low cascade thresholds so that the window trades
TRADE_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.0", "TM_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A history folder with ZZZUSDT (synthetic, its filters) and the shipped BTCUSDT, and a
    registry whose production signal model was trained on ZZZUSDT alone."""
    root = tmp_path_factory.mktemp("anyinst")
    history = root / "history"
    write_history(history, start_ms=HISTORY_START_MS, n_bars=3600)
    write_instrument(history, unshipped_spec())
    for f in (bars_file("BTCUSDT"), funding_file("BTCUSDT")):
        shutil.copy(f, history / f.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(root / "tm"),
               TM_DATABASE_URL=f"sqlite+aiosqlite:///{root / 'registry.db'}")
    p = subprocess.run([sys.executable, "-m", "tm_trainer", "--instruments", SYM,
                        "--history-dir", str(history), "--fast", "--source", "files",
                        "--train-end", TRAIN_END, "--no-publish", "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=900, check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert f"{SYM} model" in p.stdout
    force_signal_model(env["TM_DATABASE_URL"])
    return history, env



def _config(history: Path, env: dict[str, str], symbols: tuple[str, ...]):
    from tm_app.backtest import RunConfig

    return RunConfig(start_ms=START_MS, end_ms=START_MS + (BARS - 1) * 4 * 3600_000,
                     database_url=env["TM_DATABASE_URL"], symbols=symbols,
                     history_dir=str(history), extra_env=TRADE_ENV)


def _assert_within_filters(record, closes: dict[int, Decimal]) -> None:
    spec = unshipped_spec()
    orders = [o for o in record.orders if o.instrument == SYM]
    fills = [f for f in record.fills if f.instrument == SYM]
    assert orders and fills, "the window must trade the unshipped symbol"
    for o in orders:
        assert o.qty % spec.qty_step == 0 and o.qty >= spec.min_order_qty, o
        if not o.reduce_only:
            assert o.qty * closes[o.bar_time_ms] >= spec.min_notional, o
    venue = [r for r in record.rejections if getattr(r, "source", "") == "executor"]
    assert venue == [], venue


def _closes(history: Path) -> dict[int, Decimal]:
    from tm_common.history import load_bars

    return {b.open_time_ms: Decimal(b.close) for b in load_bars(SYM, directory=history)}


def test_backtest_alone_and_next_to_btc(trained):
    from tm_app.backtest import run_backtest

    history, env = trained
    alone = asyncio.run(run_backtest(_config(history, env, (SYM,))))
    _assert_within_filters(alone, _closes(history))
    both = asyncio.run(run_backtest(_config(history, env, ("BTCUSDT", SYM))))
    assert {b.instrument for b in both.bodies("md.bar", "bar.closed")} == {"BTCUSDT", SYM}
    _assert_within_filters(both, _closes(history))


def test_tm_backtest_command_on_the_unshipped_symbol(trained, tmp_path):
    history, env = trained
    tm = Path(sys.executable).parent / "tm"
    p = subprocess.run([str(tm), "backtest", "--symbols", SYM, "--history-dir", str(history),
                        "--start", "2024-06-01", "--end", "2024-06-05", "--out",
                        str(tmp_path / "report")], env={**env, **TRADE_ENV}, cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert SYM in p.stdout and (tmp_path / "report" / "report.json").is_file()


def test_mesh_replay_of_the_unshipped_symbol_equals_the_backtest(trained, redis_url, tmp_path):
    from tm_app.backtest import run_backtest
    from tm_app.mesh import run_mesh

    history, env = trained
    cfg = _config(history, env, (SYM,))
    backtest = asyncio.run(run_backtest(cfg))
    mesh = run_mesh(cfg, redis_url=redis_url, data_dir=tmp_path, port_offset=600,
                    log=lambda m: None).record
    _assert_within_filters(mesh, _closes(history))
    b, m = backtest.trading_view(), mesh.trading_view()
    for key in ("orders", "fills", "equity"):
        assert m[key] == b[key], f"{key} differ between the mesh and the backtest"


def test_instrument_file_is_what_the_simulator_serves(trained):
    from tm_app.venue import InProcessBybit
    from tm_exchange_sim.config import ExchangeSimSettings

    history, _ = trained
    assert instrument_file(SYM, history).is_file()
    venue = InProcessBybit.from_settings(ExchangeSimSettings(sim_symbols=[SYM],
                                                             sim_history_dir=history))
    (entry,) = venue.get_instruments_info(category="linear")["result"]["list"]
    lot = entry["lotSizeFilter"]
    assert (lot["qtyStep"], lot["minNotionalValue"]) == ("1", "5")
