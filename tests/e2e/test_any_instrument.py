"""Any USDT perpetual end to end: a symbol the project does not ship (``ZZZUSDT``: a synthetic
history with a learnable momentum, and its own lot filters, a qty step of one whole coin and a
5 USDT minimum notional, recorded beside the history as ``ZZZUSDT_instrument.json``) trains,
backtests alone and next to BTCUSDT, and replays through the mesh with the same orders.

Every order risk sends respects the venue's filters it read from the venue (whole coins, at
least the minimum notional when it opens), so the venue refuses none of them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from tm_common.history import instrument_file
from tm_common.testing.instrument_history import UNSHIPPED_SYMBOL, unshipped_spec

from .conftest import TRADE_ENV, window_config

pytestmark = pytest.mark.slow
SYM = UNSHIPPED_SYMBOL
BARS = 90


def _config(history: Path, env: dict[str, str], symbols: tuple[str, ...]):
    return window_config(history, env["TM_DATABASE_URL"], symbols, BARS)


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


def test_backtest_alone_and_next_to_btc(unshipped_trained):
    from tm_app.backtest import run_backtest

    history, env = unshipped_trained
    alone = asyncio.run(run_backtest(_config(history, env, (SYM,))))
    _assert_within_filters(alone, _closes(history))
    both = asyncio.run(run_backtest(_config(history, env, ("BTCUSDT", SYM))))
    assert {b.instrument for b in both.bodies("md.bar", "bar.closed")} == {"BTCUSDT", SYM}
    _assert_within_filters(both, _closes(history))


def test_tm_backtest_command_on_the_unshipped_symbol(unshipped_trained, tmp_path):
    history, env = unshipped_trained
    tm = Path(sys.executable).parent / "tm"
    p = subprocess.run([str(tm), "backtest", "--symbols", SYM, "--history-dir", str(history),
                        "--start", "2024-06-01", "--end", "2024-06-05", "--out",
                        str(tmp_path / "report")], env={**env, **TRADE_ENV}, cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert SYM in p.stdout and (tmp_path / "report" / "report.json").is_file()


def test_mesh_replay_of_the_unshipped_symbol_equals_the_backtest(unshipped_trained, redis_url,
                                                                 tmp_path):
    from tm_app.backtest import run_backtest
    from tm_app.mesh import run_mesh

    history, env = unshipped_trained
    cfg = _config(history, env, (SYM,))
    backtest = asyncio.run(run_backtest(cfg))
    mesh = run_mesh(cfg, redis_url=redis_url, data_dir=tmp_path, port_offset=600,
                    log=lambda m: None).record
    _assert_within_filters(mesh, _closes(history))
    b, m = backtest.trading_view(), mesh.trading_view()
    for key in ("orders", "fills", "equity"):
        assert m[key] == b[key], f"{key} differ between the mesh and the backtest"


def test_instrument_file_is_what_the_simulator_serves(unshipped_trained):
    from tm_app.venue import InProcessBybit
    from tm_exchange_sim.config import ExchangeSimSettings

    history, _ = unshipped_trained
    assert instrument_file(SYM, history).is_file()
    venue = InProcessBybit.from_settings(ExchangeSimSettings(sim_symbols=[SYM],
                                                             sim_history_dir=history))
    (entry,) = venue.get_instruments_info(category="linear")["result"]["list"]
    lot = entry["lotSizeFilter"]
    assert (lot["qtyStep"], lot["minNotionalValue"]) == ("1", "5")
