"""Where the RL walk-forward's history comes from: the database (``--source db``: what live
ingest and ``tm backfill`` stored) or the shipped CSV files (``--source files``), chosen for
``auto`` by the same rule as ``tm train`` (:func:`tm_trainer.sources.resolve_source`).

Both sources give a :class:`~tm_trainer.data.RawInputs` limited to the policy's instruments, so
the same rows give the same data hash (what the OOS cache key and the registry record) whichever
source they came from; :func:`history_of` turns it into the per-symbol dict that
:func:`~tm_trainer.rl.oos.build_oos` takes. There is no training cut-off: every OOS signal is
out of sample by construction, and the newest windows are the policy's validation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from tm_trainer.data import BTC, DataError, RawInputs
from tm_trainer.rl.oos import WalkForwardConfig, load_history
from tm_trainer.sources import (
    db_bar_counts,
    db_last_bar_ms,
    judge_counts,
    load_db_inputs,
    resolve_source,
)

NO_BTC_CROSS = f"{BTC} bars (cross features NaN)"


def bars_needed(wf: WalkForwardConfig, val_windows: int) -> int:
    """Bars per instrument one run needs: the first test bar, then ``val_windows`` held-back
    walk-forward windows and at least one window to train the policy on."""
    return wf.first_test_bar + (val_windows + 1) * wf.test_bars


def history_of(inputs: RawInputs) -> dict[str, dict]:
    """The :func:`~tm_trainer.rl.oos.build_oos` history of every instrument of ``inputs``
    (as :func:`~tm_trainer.rl.oos.load_history` gives it: no funding = empty arrays)."""
    out = {}
    for sym, bars in inputs.bars.items():
        f = inputs.funding.get(sym)
        if f is None:
            f = {"timestamp": np.array([], dtype=np.int64), "funding_rate": np.array([])}
        out[sym] = {"bars": bars, "funding": f, "dvol": inputs.dvol}
    return out


def inputs_of(history: Mapping[str, Mapping], source: str = "files") -> RawInputs:
    """:func:`history_of` reversed: the :class:`RawInputs` of a ``load_history`` dict (empty
    funding = none), for the data hash and row counts the registry records."""
    bars = {s: dict(h["bars"]) for s, h in history.items()}
    funding = {s: (dict(h["funding"]) if len(h["funding"]["timestamp"]) else None)
               for s, h in history.items()}
    dvol = next((h["dvol"] for h in history.values()), None)
    missing = [f"{s} funding" for s, f in funding.items() if f is None]
    if BTC not in bars:
        missing.insert(0, NO_BTC_CROSS)
    return RawInputs(bars=bars, funding=funding, dvol=None if dvol is None else dict(dvol),
                     missing=tuple(missing), source=source)


def files_inputs(symbols: Sequence[str], history_dir: str | None) -> RawInputs:
    """The shipped CSV files of ``symbols`` (:func:`~tm_trainer.rl.oos.load_history`).

    Raises:
        DataError: a bars or the DVOL file is missing or malformed.
    """
    from tm_common.history import HistoryFileError

    try:
        return inputs_of(load_history(symbols, history_dir), "files")
    except HistoryFileError as e:
        raise DataError(str(e)) from e
    except (ValueError, ArithmeticError) as e:
        raise DataError(f"history files: malformed value: {e}") from e


async def db_inputs(engine: AsyncEngine, symbols: Sequence[str], need: int) -> RawInputs:
    """Every stored bar, funding rate and DVOL day of ``symbols`` (no cut-off).

    Raises:
        DataError: an instrument has no bars, or fewer than ``need``, in the database (the
            message names ``tm backfill``).
    """
    await db_last_bar_ms(engine, symbols)                 # none at all: the `tm train` message
    source, why = judge_counts(await db_bar_counts(engine, symbols), need)
    if source != "db":
        raise DataError(f"{why}: fill it with `tm backfill --since YYYY-MM-DD` "
                        "(or use --source files)")
    inputs = await load_db_inputs(engine, tuple(symbols), end_ms=None)
    # only the policy's instruments, as from the files: BTC is no cross input of the others here
    missing = [m for m in inputs.missing if m != NO_BTC_CROSS]
    if BTC not in symbols:
        missing.insert(0, NO_BTC_CROSS)
    return RawInputs(bars={s: inputs.bars[s] for s in symbols},
                     funding={s: inputs.funding.get(s) for s in symbols}, dvol=inputs.dvol,
                     missing=tuple(missing), source="db")


async def load_inputs(engine: AsyncEngine | None, source: str, symbols: Sequence[str],
                      need: int, history_dir: str | None,
                      log: Callable[[str], None]) -> RawInputs:
    """The RL run's data from ``source`` (``auto``, ``db`` or ``files``; ``engine`` may be None
    only for ``files``)."""
    if source != "files":
        if engine is None:
            raise ValueError(f"--source {source} needs the database")
        source = await resolve_source(engine, source, symbols, need, log)
    if source == "db":
        assert engine is not None
        return await db_inputs(engine, symbols, need)
    return files_inputs(symbols, history_dir)
