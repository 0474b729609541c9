"""Real shipped market data for the quant tests: ``data/history/`` in the repo, else the shared copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_HISTORY = Path(__file__).resolve().parents[3] / "data" / "history"
SHARED = Path("/work/shared/data")
_SUBDIR = {"4h": "ohlcv", "funding": "funding", "DVOL": "dvol"}


def data_file(name: str) -> Path:
    """``data/history/<name>`` if present, else the shared data folder's copy."""
    local = REPO_HISTORY / name
    if local.exists():
        return local
    sub = next(d for key, d in _SUBDIR.items() if key in name)
    path = SHARED / sub / name
    if not path.exists():
        pytest.skip(f"market data {name} not found in {REPO_HISTORY} or {SHARED}")
    return path


class Market:
    """Lazily loaded, cached frames: bars(sym), funding(sym), dvol()."""

    def __init__(self) -> None:
        self._cache: dict[str, pd.DataFrame] = {}

    def _load(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            self._cache[name] = pd.read_csv(data_file(name))
        return self._cache[name]

    def bars(self, sym: str) -> pd.DataFrame:
        return self._load(f"{sym}_4h.csv")

    def funding(self, sym: str) -> pd.DataFrame:
        return self._load(f"{sym}_funding_8h.csv")

    def dvol(self) -> pd.DataFrame:
        return self._load("BTC_DVOL_1d.csv")


@pytest.fixture(scope="session")
def market() -> Market:
    return Market()


@pytest.fixture(scope="module")
def returns(market) -> np.ndarray:
    """Log returns of the first 3,000 shipped BTCUSDT 4h closes (decimal, not percent)."""
    c = market.bars("BTCUSDT")["close"].to_numpy()[:3000]
    return np.diff(np.log(c))
