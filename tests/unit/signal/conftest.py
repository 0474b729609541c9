"""Shared pieces for the signal unit tests: shipped bars as domain bars, small real bundles."""

from __future__ import annotations

import pytest
from tm_common.history import load_bars
from tm_common.models.bundle import Bundle
from tm_quant.features import BAR_MS
from tm_signal.domain.bars import BarIn
from tm_signal.domain.model import SignalModel
from tm_signal.testing import signal_bundle

START = 5000          # index into the shipped bars (2024), away from the 2023 gap


def history(sym: str, start: int, n: int) -> list[BarIn]:
    return [BarIn(sym, b.open_time_ms, float(b.open), float(b.high), float(b.low),
                  float(b.close), float(b.volume), (b.open_time_ms + BAR_MS) * 1_000_000)
            for b in load_bars(sym)[start:start + n]]


def model_from(data: bytes) -> SignalModel:
    b = Bundle.from_bytes(data)
    return SignalModel.from_manifest(b.manifest, b.files)


@pytest.fixture(scope="session")
def first_ms() -> int:
    return load_bars("BTCUSDT")[START].open_time_ms


@pytest.fixture(scope="session")
def model_v1(first_ms) -> SignalModel:
    return model_from(signal_bundle("v1", first_bar_ms=first_ms, seed=1))
