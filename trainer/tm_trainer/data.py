"""Training data: shipped history → per-instrument feature matrices and forward-return labels.

Everything loaded for training stops at ``train_end_ms`` (bars with an open time at or after it,
funding settled and DVOL days stamped at or after it are never read), so no feature, label, GARCH
fit or selection can see the held-out period. Features come from :func:`tm_quant.compute_batch`
(the same code the live signal service runs) with GARCH parameters fitted by the caller on a
training window only.

Inputs per instrument: 4 h bars (required), 8 h funding (optional), BTC DVOL (optional, shared),
BTC bars (cross features for every other instrument). A missing optional file gives NaN features
and is listed in :attr:`Dataset.missing`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tm_common.history import HistoryFileError, load_bars, load_dvol, load_funding
from tm_quant.features import FEATURE_NAMES, compute_batch
from tm_quant.features.spec import INDEX
from tm_quant.garch import GarchParams, fit_garch
from tm_quant.labels import LABELS, forward_log_return, vol_scaled_return

BTC = "BTCUSDT"


class DataError(ValueError):
    """History missing, malformed or too short; the message says which file or why."""


@dataclass(frozen=True)
class RawInputs:
    """Arrays as read from the history files (dicts of numpy columns, ``timestamp`` int64 ms)."""

    bars: dict[str, dict[str, np.ndarray]]
    funding: dict[str, dict[str, np.ndarray] | None]
    dvol: dict[str, np.ndarray] | None
    missing: tuple[str, ...] = ()
    source: str = "files"

    def row_counts(self) -> dict[str, dict[str, int]]:
        """Rows used per instrument (``bars``, ``funding``) and ``DVOL/BTC`` (``dvol``)."""
        out: dict[str, dict[str, int]] = {}
        for sym in sorted(self.bars):
            fr = self.funding.get(sym)
            out[sym] = {"bars": int(self.bars[sym]["timestamp"].shape[0]),
                        "funding": 0 if fr is None else int(fr["timestamp"].shape[0])}
        out["DVOL/BTC"] = {"dvol": 0 if self.dvol is None else int(self.dvol["timestamp"].shape[0])}
        return out

    def last_bar_ms(self) -> int:
        """Open time of the newest bar present for every loaded instrument."""
        return int(min(int(b["timestamp"][-1]) for b in self.bars.values()))

    def data_info(self) -> dict:
        """What the registry records about the data: source, hash, rows, newest bar."""
        return {"source": self.source, "data_hash": self.data_hash(), "rows": self.row_counts(),
                "last_bar_ms": self.last_bar_ms(), "missing": list(self.missing)}

    def data_hash(self) -> str:
        """sha256 over every input array in a fixed order (symbol, table, column)."""
        h = hashlib.sha256()

        def feed(tag: str, table: dict[str, np.ndarray] | None) -> None:
            h.update(tag.encode())
            if table is None:
                h.update(b"<none>")
                return
            for col in sorted(table):
                arr = np.ascontiguousarray(table[col])
                h.update(f"{col}:{arr.dtype.str}:{arr.shape}".encode())
                h.update(arr.tobytes())

        for sym in sorted(self.bars):
            feed(f"bars/{sym}", self.bars[sym])
            feed(f"funding/{sym}", self.funding.get(sym))
        feed("dvol/BTC", self.dvol)
        return h.hexdigest()


def load_inputs(instruments: tuple[str, ...], *, end_ms: int | None,
                directory: str | Path | None = None) -> RawInputs:
    """Read bars, funding and DVOL with timestamps ``< end_ms`` (None = everything).

    BTC bars are loaded too when BTC is not among ``instruments`` (cross features).

    Raises:
        DataError: a bars file is missing or malformed, or has fewer than 2 rows.
    """
    last = None if end_ms is None else end_ms - 1
    bars: dict[str, dict[str, np.ndarray]] = {}
    funding: dict[str, dict[str, np.ndarray] | None] = {}
    missing: list[str] = []
    for sym in dict.fromkeys((*instruments, BTC)):
        try:
            rows = load_bars(sym, None, last, directory=directory)
        except HistoryFileError as e:
            if sym == BTC and BTC not in instruments:
                missing.append(f"{sym} bars (cross features NaN)")
                continue
            raise DataError(str(e)) from e
        except (ValueError, ArithmeticError) as e:
            raise DataError(f"{sym} bars: malformed value: {e}") from e
        if len(rows) < 2:
            raise DataError(f"{sym}: only {len(rows)} bars before the training cut-off")
        bars[sym] = {"timestamp": np.array([b.open_time_ms for b in rows], dtype=np.int64),
                     **{f: np.array([float(getattr(b, f)) for b in rows]) for f in
                        ("open", "high", "low", "close", "volume")}}
        if sym not in instruments:
            continue
        try:
            fr = [f for f in load_funding(sym, directory=directory) if last is None or f.time_ms <= last]
            funding[sym] = {"timestamp": np.array([f.time_ms for f in fr], dtype=np.int64),
                            "funding_rate": np.array([float(f.rate) for f in fr])}
        except HistoryFileError:
            funding[sym] = None
            missing.append(f"{sym} funding")
    try:
        dv = [d for d in load_dvol("BTC", directory=directory) if last is None or d.day_ms <= last]
        dvol = {"timestamp": np.array([d.day_ms for d in dv], dtype=np.int64),
                "dvol_close": np.array([float(d.close) for d in dv])}
    except HistoryFileError:
        dvol = None
        missing.append("BTC DVOL")
    return RawInputs(bars=bars, funding=funding, dvol=dvol, missing=tuple(missing))


@dataclass(frozen=True)
class InstrumentData:
    """One instrument on the common timeline (row i = bar ``ts[i]``).

    Attributes:
        X: (n, 49) features in ``FEATURE_NAMES`` order (NaN during warm-up / missing inputs).
        fwd: forward log return over the horizon (NaN for the last ``horizon`` rows).
        ret_next: simple return of the next bar, ``c[i+1]/c[i] - 1`` (NaN on the last row): what a
            position held from bar i's close earns.
        garch: the GARCH parameters the features were computed with.
        first_bar_ms: open time of the first bar fed to ``compute_batch``.
        target: what a family is fitted on (``TrainRows.fwd``) when it is not ``fwd``: the
            vol-scaled label (``TrainConfig.label``); None = ``fwd``.
    """

    symbol: str
    X: np.ndarray
    fwd: np.ndarray
    ret_next: np.ndarray
    garch: GarchParams
    first_bar_ms: int
    target: np.ndarray | None = None

    @property
    def label(self) -> np.ndarray:
        """The training label's values (``target``, else ``fwd``); its sign is ``fwd``'s."""
        return self.fwd if self.target is None else self.target


@dataclass(frozen=True)
class Dataset:
    ts: np.ndarray
    horizon_bars: int
    instruments: dict[str, InstrumentData]
    data_hash: str
    names: tuple[str, ...] = FEATURE_NAMES
    missing: tuple[str, ...] = field(default=())

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])


def common_timeline(inputs: RawInputs, instruments: tuple[str, ...]) -> np.ndarray:
    """Bar open times present for every instrument (sorted int64 ms)."""
    ts = inputs.bars[instruments[0]]["timestamp"]
    for sym in instruments[1:]:
        ts = np.intersect1d(ts, inputs.bars[sym]["timestamp"])
    return ts


def fit_garch_before(inputs: RawInputs, symbol: str, end_ms: int) -> GarchParams:
    """GARCH(1,1)-t fitted on ``symbol``'s 1-bar log returns of bars opening before ``end_ms``.

    Raises:
        DataError: fewer than ~100 returns, or the fit does not converge.
    """
    b = inputs.bars[symbol]
    c = b["close"][b["timestamp"] < end_ms]
    try:
        return fit_garch(np.diff(np.log(c)))
    except ValueError as e:
        raise DataError(f"{symbol}: GARCH fit on the training window failed: {e}") from e


def build_dataset(inputs: RawInputs, instruments: tuple[str, ...], horizon_bars: int,
                  garch: dict[str, GarchParams], label: str = LABELS[0]) -> Dataset:
    """Features (``compute_batch`` on each instrument's full loaded series) and labels, aligned to
    the common timeline. ``garch``: per-instrument parameters, fitted on a training window.
    ``label``: ``vol_scaled`` also computes ``target`` (:func:`tm_quant.labels.vol_scaled_return`
    with ``rv_42``)."""
    ts = common_timeline(inputs, instruments)
    btc = inputs.bars.get(BTC)
    out: dict[str, InstrumentData] = {}
    for sym in instruments:
        b = inputs.bars[sym]
        X, _ = compute_batch(b, inputs.dvol, inputs.funding.get(sym), None if sym == BTC else btc,
                             garch_params=garch[sym])
        c = b["close"]
        fwd = forward_log_return(c, horizon_bars)
        nxt = np.full(c.shape[0], np.nan)
        nxt[:-1] = c[1:] / c[:-1] - 1.0
        rows = np.searchsorted(b["timestamp"], ts)
        target = None if label == LABELS[0] else \
            vol_scaled_return(fwd, X[:, INDEX["rv_42"]], horizon_bars)[rows]
        out[sym] = InstrumentData(symbol=sym, X=X[rows], fwd=fwd[rows], ret_next=nxt[rows],
                                  garch=garch[sym], first_bar_ms=int(b["timestamp"][0]),
                                  target=target)
    return Dataset(ts=ts, horizon_bars=horizon_bars, instruments=out, data_hash=inputs.data_hash(),
                   missing=inputs.missing)
