"""Where training data comes from: the database (``--source db``: what live ingest and
``tm backfill`` stored) or the shipped CSV files (``--source files``), and the default cut-off.
``auto`` (:func:`resolve_source`) is one rule for ``tm train`` and ``tm train rl``
(:mod:`tm_trainer.rl.inputs`), each with its own number of bars needed.

Both give the same :class:`~tm_trainer.data.RawInputs` (float columns, int64 ms timestamps), so
the same rows give the same data hash whichever source they came from. The default cut-off is
the close of the newest bar every instrument has, minus the purge gap (``purge_bars`` bars): data
that grows moves the cut-off, and the newest ``purge_bars`` bars are never trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine
from tm_common.db.market import bar_counts, bar_span_ms, read_bars, read_dvol, read_funding
from tm_common.history import BAR_INTERVAL_MS, HistoryFileError, load_bars
from tm_quant.features import WARMUP_BARS

from tm_trainer.config import TrainConfig
from tm_trainer.data import BTC, DataError, RawInputs

SOURCES = ("auto", "db", "files")


def default_train_end_ms(last_bar_open_ms: int, purge_bars: int) -> int:
    """The close of the bar opening at ``last_bar_open_ms`` minus ``purge_bars`` bars (ms)."""
    return last_bar_open_ms + BAR_INTERVAL_MS - purge_bars * BAR_INTERVAL_MS


def files_last_bar_ms(instruments: Sequence[str], directory: str | Path | None = None) -> int:
    """Open time of the newest bar that every instrument's CSV has.

    Raises:
        DataError: a bars file is missing, malformed or empty.
    """
    last = []
    for sym in instruments:
        try:
            rows = load_bars(sym, directory=directory)
        except HistoryFileError as e:
            raise DataError(str(e)) from e
        if not rows:
            raise DataError(f"{sym}: the history file has no bars")
        last.append(rows[-1].open_time_ms)
    return min(last)


async def db_bar_counts(engine: AsyncEngine, instruments: Sequence[str]) -> dict[str, int]:
    async with engine.connect() as conn:
        return await bar_counts(conn, instruments)


def bars_needed(cfg: TrainConfig) -> int:
    """Bars per instrument a run of ``cfg`` needs with the default cut-off: the smallest
    training set, the purge and horizon, the test windows, and the purge before the cut-off."""
    return (max(cfg.min_train_bars, WARMUP_BARS + 100) + cfg.purge_bars + cfg.horizon_bars
            + cfg.n_windows * cfg.window_bars + cfg.purge_bars)


def judge_counts(counts: dict[str, int], need: int) -> tuple[str, str]:
    """The ``auto`` rule on stored bar counts: ``("db", why)`` when every instrument has at least
    ``need`` bars, else ``("files", why)`` listing the short ones."""
    short = {s: n for s, n in counts.items() if n < need}
    if not short:
        return "db", f"the database holds >= {need} bars of every instrument"
    listing = ", ".join(f"{s} {n}" for s, n in short.items())
    return "files", f"the database holds too few bars ({listing}; {need} needed)"


async def resolve_source(engine: AsyncEngine, source: str, instruments: Sequence[str], need: int,
                         log: Callable[[str], None]) -> str:
    """``db`` or ``files``: ``source`` itself, or for ``auto`` the :func:`judge_counts` rule with
    ``need`` bars per instrument, logged as ``source auto: <source> (<why>)``."""
    if source != "auto":
        return source
    chosen, why = judge_counts(await db_bar_counts(engine, instruments), need)
    log(f"source auto: {chosen} ({why})")
    return chosen


def rows_line(inputs: RawInputs | None) -> str:
    """``" (BTCUSDT 7661 bars, ...)"`` for the ``data:`` line ("" when the rows are not known)."""
    if inputs is None:
        return ""
    return " (" + ", ".join(f"{s} {c['bars']} bars" for s, c in inputs.row_counts().items()
                            if "bars" in c) + ")"


async def db_last_bar_ms(engine: AsyncEngine, instruments: Sequence[str]) -> int:
    """Open time of the newest stored bar that every instrument has.

    Raises:
        DataError: an instrument has no bars in the database.
    """
    last = []
    async with engine.connect() as conn:
        for sym in instruments:
            span = await bar_span_ms(conn, sym)
            if span is None:
                raise DataError(f"the database holds no {sym} bars: fill it with "
                                "`tm backfill --since YYYY-MM-DD` (or use --source files)")
            last.append(span[1])
    return min(last)


async def load_db_inputs(engine: AsyncEngine, instruments: tuple[str, ...], *,
                         end_ms: int | None) -> RawInputs:
    """:func:`tm_trainer.data.load_inputs` from the database: bars opening, funding settled and
    DVOL days before ``end_ms`` (None = everything). BTC bars are loaded for cross features; a
    table with no rows for an instrument gives NaN features, listed in ``missing``.

    Raises:
        DataError: an instrument has fewer than 2 bars before the cut-off.
    """
    bars: dict[str, dict[str, np.ndarray]] = {}
    funding: dict[str, dict[str, np.ndarray] | None] = {}
    missing: list[str] = []
    async with engine.connect() as conn:
        for sym in dict.fromkeys((*instruments, BTC)):
            rows = await read_bars(conn, sym, end_ms)
            if len(rows) < 2:
                if sym == BTC and BTC not in instruments:
                    missing.append(f"{sym} bars (cross features NaN)")
                    continue
                raise DataError(f"{sym}: only {len(rows)} bars in the database before the "
                                "training cut-off (run `tm backfill --since YYYY-MM-DD`)")
            bars[sym] = {"timestamp": np.array([b.open_time_ms for b in rows], dtype=np.int64),
                         **{f: np.array([float(getattr(b, f)) for b in rows]) for f in
                            ("open", "high", "low", "close", "volume")}}
            if sym not in instruments:
                continue
            fr = await read_funding(conn, sym, end_ms)
            if fr:
                funding[sym] = {"timestamp": np.array([t for t, _ in fr], dtype=np.int64),
                                "funding_rate": np.array([float(r) for _, r in fr])}
            else:
                funding[sym] = None
                missing.append(f"{sym} funding")
        dv = await read_dvol(conn, "BTC", end_ms)
    dvol = None
    if dv:
        dvol = {"timestamp": np.array([d for d, _ in dv], dtype=np.int64),
                "dvol_close": np.array([v for _, v in dv])}
    else:
        missing.append("BTC DVOL")
    return RawInputs(bars=bars, funding=funding, dvol=dvol, missing=tuple(missing), source="db")
