"""End to end on a symbol the project does not ship (``ZZZUSDT``): its synthetic history with
BTCUSDT's beside it and a registry trained on it (``unshipped_trained``, once per module), the
clean environment the subprocesses get, and the backtest window after its training cut-off.
Test modules import the helpers with ``from .conftest import ...``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tm_common.history import bars_file, funding_file
from tm_common.testing.instrument_history import (
    UNSHIPPED_SYMBOL,
    unshipped_spec,
    write_history,
    write_instrument,
)
from tm_common.testing.promote import force_signal_model

BAR_MS = 4 * 3600_000
HISTORY_START_MS = 1_672_531_200_000          # 2023-01-01
TRAIN_END = "2024-06-01"
START_MS = 1_717_200_000_000                  # 2024-06-01 00:00 UTC
# a test configuration (as in the parity test): low cascade thresholds so that the window trades
TRADE_ENV = {"TM_SIZER_KELLY_CONFIDENCE": "0.0", "TM_LOG_LEVEL": "WARNING"}


def clean_env(root: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any ``TM_`` variable, data under ``root / "tm"``,
    and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env.update(TM_DATA_DIR=str(root / "tm"), **extra)
    return env


@pytest.fixture(scope="module")
def unshipped_trained(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(history folder, env): the folder holds ZZZUSDT (synthetic, 3600 bars from 2023-01-01,
    its filters) and the shipped BTCUSDT; ``env`` (:func:`clean_env`) names in
    ``TM_DATABASE_URL`` a SQLite registry whose production signal model the trainer made from
    ZZZUSDT alone, up to ``TRAIN_END``."""
    root = tmp_path_factory.mktemp("unshipped")
    history = root / "history"
    write_history(history, start_ms=HISTORY_START_MS, n_bars=3600)
    write_instrument(history, unshipped_spec())
    for f in (bars_file("BTCUSDT"), funding_file("BTCUSDT")):
        shutil.copy(f, history / f.name)
    env = clean_env(root, TM_DATABASE_URL=f"sqlite+aiosqlite:///{root / 'registry.db'}")
    p = subprocess.run([sys.executable, "-m", "tm_trainer", "--instruments", UNSHIPPED_SYMBOL,
                        "--history-dir", str(history), "--fast", "--source", "files",
                        "--train-end", TRAIN_END, "--no-publish", "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=900, check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert f"{UNSHIPPED_SYMBOL} model" in p.stdout
    force_signal_model(env["TM_DATABASE_URL"])
    return history, env


def window_config(history: Path, database_url: str, symbols: tuple[str, ...], bars: int):
    """The in-process backtest's configuration for ``bars`` bars of ``symbols`` from
    ``START_MS``, on ``history`` and the registry at ``database_url``, with ``TRADE_ENV``."""
    from tm_app.backtest import RunConfig

    return RunConfig(start_ms=START_MS, end_ms=START_MS + (bars - 1) * BAR_MS,
                     database_url=database_url, symbols=symbols, history_dir=str(history),
                     extra_env=TRADE_ENV)


__all__ = ["BAR_MS", "HISTORY_START_MS", "START_MS", "TRADE_ENV", "clean_env", "window_config"]
