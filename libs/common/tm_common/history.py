"""Shipped market history (``data/history``): 4h bars, 8h funding rates and BTC DVOL.

Prices are kept as the CSV text, so ``Decimal(bar.close)`` is exact and a bar served by the
exchange sim or replayed by ingest carries the very strings in the file. See
``data/history/PROVENANCE.md`` for sources and caveats (spot-not-perp, the 2023-03-24 12:00 gap,
DVOL known one day late, SOL funding from 2022-12-12).
"""

from __future__ import annotations

import csv
import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from tm_common.instruments import InstrumentSpec

if TYPE_CHECKING:
    import pandas as pd

BAR_INTERVAL_MS = 4 * 60 * 60 * 1000
DAY_MS = 24 * 60 * 60 * 1000
BAR_HEADER = ("timestamp", "open", "high", "low", "close", "volume")
FUNDING_HEADER = ("timestamp", "funding_rate")
DVOL_HEADER = ("timestamp", "dvol_close")


class HistoryFileError(FileNotFoundError):
    """A history file is missing or malformed; the message names the path."""


@dataclass(frozen=True, slots=True)
class HistoryBar:
    """One closed 4h bar; price and volume fields are the CSV text."""

    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str

    @property
    def close_time_ms(self) -> int:
        """The bar's end: open time + 4h (exclusive)."""
        return self.open_time_ms + BAR_INTERVAL_MS

    def decimal(self, field: str) -> Decimal:
        """``Decimal`` of one of open/high/low/close/volume, exact."""
        return Decimal(getattr(self, field))


@dataclass(frozen=True, slots=True)
class FundingRate:
    """One 8h funding settlement; ``rate`` is the CSV text (may be exponent form)."""

    time_ms: int
    rate: str

    @property
    def rate_decimal(self) -> Decimal:
        return Decimal(self.rate)


@dataclass(frozen=True, slots=True)
class DvolPoint:
    """Daily DVOL close for ``day_ms``; only known from ``known_at_ms`` (the next midnight)."""

    day_ms: int
    close: str

    @property
    def known_at_ms(self) -> int:
        return self.day_ms + DAY_MS


def history_dir(path: str | Path | None = None) -> Path:
    """The history folder: ``path`` when given, else the repository's ``data/history``."""
    if path is not None:
        return Path(path)
    return Path(__file__).resolve().parents[3] / "data" / "history"


def bars_file(symbol: str, directory: str | Path | None = None) -> Path:
    return history_dir(directory) / f"{symbol.upper()}_4h.csv"


def funding_file(symbol: str, directory: str | Path | None = None) -> Path:
    return history_dir(directory) / f"{symbol.upper()}_funding_8h.csv"


def dvol_file(currency: str = "BTC", directory: str | Path | None = None) -> Path:
    return history_dir(directory) / f"{currency.upper()}_DVOL_1d.csv"


def instrument_file(symbol: str, directory: str | Path | None = None) -> Path:
    """``<SYMBOL>_instrument.json`` beside the history: the symbol's lot filters as the venue
    publishes them (one ``result.list`` entry of ``/v5/market/instruments-info``)."""
    return history_dir(directory) / f"{symbol.upper()}_instrument.json"


def load_instrument(symbol: str, *, directory: str | Path | None = None) -> InstrumentSpec | None:
    """The lot filters recorded beside ``symbol``'s history (:func:`instrument_file`), or None
    when there is no such file. The file holds one instruments-info entry, a ``result.list`` of
    them, or a whole V5 answer (``{"retCode": 0, "result": {"list": [...]}}``); the entry whose
    ``symbol`` is ``symbol`` is taken.

    Raises:
        HistoryFileError: the file is not JSON, holds no entry for ``symbol``, or the entry is
            malformed (the message names the path and the field).
    """
    path = instrument_file(symbol, directory)
    if not path.is_file():
        return None
    sym = symbol.upper()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HistoryFileError(f"{path}: not a JSON instruments-info entry ({e})") from e
    if isinstance(doc, dict) and isinstance(doc.get("result"), dict):
        doc = doc["result"]
    if isinstance(doc, dict) and isinstance(doc.get("list"), list):
        doc = doc["list"]
    entries = doc if isinstance(doc, list) else [doc]
    entry = next((e for e in entries if isinstance(e, dict) and e.get("symbol") == sym), None)
    if entry is None:
        raise HistoryFileError(f"{path}: no instruments-info entry for {sym}")
    try:
        return InstrumentSpec.from_info(entry)
    except ValueError as e:
        raise HistoryFileError(f"{path}: {e}") from e


def recorded_instruments(symbols: Iterable[str],
                         directory: str | Path | None = None) -> dict[str, InstrumentSpec]:
    """symbol → the filters recorded beside its history (:func:`load_instrument`), for the
    ``symbols`` that have such a file.

    Raises:
        HistoryFileError: as :func:`load_instrument`.
    """
    found = {s.upper(): load_instrument(s, directory=directory) for s in symbols}
    return {s: spec for s, spec in found.items() if spec is not None}


def _read_rows(path: Path, header: tuple[str, ...]) -> list[list[str]]:
    if not path.is_file():
        raise HistoryFileError(f"history file not found: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        first = next(reader, None)
        if first is None or tuple(first) != header:
            raise HistoryFileError(f"{path}: expected header {','.join(header)}, got {first}")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise HistoryFileError(f"{path}:{lineno}: expected {len(header)} fields, "
                                       f"got {len(row)}")
            rows.append(row)
    return rows


@lru_cache(maxsize=32)
def _bars_cached(path: Path, mtime_ns: int) -> tuple[tuple[HistoryBar, ...], tuple[int, ...]]:
    bars = tuple(HistoryBar(int(r[0]), r[1], r[2], r[3], r[4], r[5])
                 for r in _read_rows(path, BAR_HEADER))
    return bars, tuple(b.open_time_ms for b in bars)


def _stat_key(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError as e:
        raise HistoryFileError(f"history file not found: {path}") from e


def load_bars(symbol: str, start_ms: int | None = None, end_ms: int | None = None, *,
              directory: str | Path | None = None) -> list[HistoryBar]:
    """Bars of ``symbol`` with ``start_ms <= open_time_ms <= end_ms`` (bounds optional),
    oldest first."""
    path = bars_file(symbol, directory)
    bars, times = _bars_cached(path, _stat_key(path))
    lo = 0 if start_ms is None else bisect_left(times, start_ms)
    hi = len(bars) if end_ms is None else bisect_right(times, end_ms)
    return list(bars[lo:hi])


def bars_to_frame(bars: list[HistoryBar]) -> pd.DataFrame:
    """A pandas DataFrame (float columns, ``open_time_ms`` index) for numerical models."""
    import pandas as pd

    frame = pd.DataFrame(
        {f: [float(getattr(b, f)) for b in bars] for f in ("open", "high", "low", "close",
                                                           "volume")},
        index=pd.Index([b.open_time_ms for b in bars], name="open_time_ms"))
    return frame


def load_funding(symbol: str, *, directory: str | Path | None = None) -> list[FundingRate]:
    """Funding settlements of ``symbol``, oldest first."""
    path = funding_file(symbol, directory)
    return [FundingRate(int(r[0]), r[1]) for r in _read_rows(path, FUNDING_HEADER)]


def load_dvol(currency: str = "BTC", *, directory: str | Path | None = None) -> list[DvolPoint]:
    """Daily DVOL closes, oldest first. Join on ``known_at_ms``, never on ``day_ms``."""
    path = dvol_file(currency, directory)
    return [DvolPoint(int(r[0]), r[1]) for r in _read_rows(path, DVOL_HEADER)]
