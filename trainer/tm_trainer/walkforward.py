"""Walk-forward evaluation with purged, expanding training windows.

:func:`make_splits` is the single definition of train/test indices, used by every caller.
Test windows are ``n_windows`` consecutive blocks of ``window_bars`` rows that end at the last row;
window k starts at ``s_k = n - (n_windows - k) * window_bars``. Its training set is every row
before ``s_k - purge_bars - horizon``: a training row i has its label known at ``i + horizon <
s_k - purge_bars``, so no training label overlaps the test window and at least ``purge_bars``
more bars separate them (test index - train index > purge + horizon for every pair).

Inside each training set only (:func:`run_walkforward`): Boruta per instrument (re-run every
``reselect_every`` windows, reused in between: it saw only data before the first of those windows),
the pooled base model and the per-instrument continuation. Another signal model family
(:mod:`tm_quant.families`) goes through the same loop with its own fit and predict in place of
the xgboost models (``fit_predict``), and with Boruta or its fixed feature list (``features``). GARCH parameters are fitted by the
caller on the rows before the *first* window's training cut-off, so they too are inside every
training set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tm_quant.features.spec import INDEX, WARMUP_BARS

from tm_trainer.config import TrainConfig
from tm_trainer.data import Dataset
from tm_trainer.evaluate import score_block, summarise
from tm_trainer.honest import gated_positions, honest_summary
from tm_trainer.model import columns, predict, train_instrument
from tm_trainer.selection import boruta_select
from tm_trainer.turnover import turnover_summary


@dataclass(frozen=True)
class Split:
    """One walk-forward window: ``train`` and ``test`` are int64 row indices (ascending)."""

    window: int
    train: np.ndarray
    test: np.ndarray


def make_splits(n: int, n_windows: int, window_bars: int, purge_bars: int, horizon: int,
                min_train: int) -> list[Split]:
    """Purged expanding-window splits over ``n`` rows (see module docstring).

    Args:
        n: rows in the training span (oldest first).
        n_windows: test windows (>= 1), each ``window_bars`` rows (>= 1), the last ending at row
            ``n - 1``.
        purge_bars: extra gap (>= 0) on top of ``horizon`` (>= 1) between train and test.
        min_train: fewest training rows allowed for the first window (>= 1).

    Raises:
        ValueError: bad arguments, or the first window's training set would be shorter than
            ``min_train``.
    """
    if n_windows < 1 or window_bars < 1 or horizon < 1 or purge_bars < 0 or min_train < 1:
        raise ValueError("need n_windows, window_bars, horizon, min_train >= 1 and purge_bars >= 0")
    first = n - n_windows * window_bars
    stop0 = first - purge_bars - horizon
    if stop0 < min_train:
        raise ValueError(f"{n} bars are too few for {n_windows} windows of {window_bars} bars with "
                         f"a {purge_bars}+{horizon}-bar purge: the first training set would have "
                         f"{max(stop0, 0)} bars (< {min_train})")
    out = []
    for k in range(n_windows):
        s = first + k * window_bars
        stop = s - purge_bars - horizon
        out.append(Split(k, np.arange(0, stop, dtype=np.int64),
                         np.arange(s, s + window_bars, dtype=np.int64)))
    return out


def _warm(idx: np.ndarray) -> np.ndarray:
    return idx[idx >= WARMUP_BARS - 1]


Progress = Callable[[str, int], None]
#: ``fit_predict(ds, train_rows, symbol, cols, test_rows) -> P(up)`` for the test rows: fit on
#: the (warm) training rows of the window, predict the test rows (columns ``cols``).
FitPredict = Callable[[Dataset, np.ndarray, str, list[int], np.ndarray], np.ndarray]


def xgb_fit_predict(cfg: TrainConfig) -> FitPredict:
    """The built-in family: pooled base + per-instrument continuation (:mod:`tm_trainer.model`)."""
    def fp(ds: Dataset, train: np.ndarray, s: str, cols: list[int], test: np.ndarray) -> np.ndarray:
        data = {o: (ds.instruments[o].X[train][:, cols], ds.instruments[o].fwd[train])
                for o in ds.instruments}
        _, booster = train_instrument(data, s, cfg.xgb, cfg.seed)
        return predict(booster, ds.instruments[s].X[test][:, cols])
    return fp


def run_walkforward(ds: Dataset, cfg: TrainConfig, splits: list[Split],
                    progress: Progress | None = None, *, fit_predict: FitPredict | None = None,
                    features: tuple[str, ...] | None = None) -> dict:
    """Train and score every window; return the OOS report (per window and overall).

    Args:
        ds: features and labels (GARCH fitted before the first window's cut-off).
        cfg: training configuration (Boruta, XGBoost, costs).
        splits: from :func:`make_splits` over ``ds.n`` rows.
        progress: called as ``progress(event, k)`` with "window" after each window.
        fit_predict: the family's fit + predict per window and instrument (default: the
            built-in xgboost transfer learning, :func:`xgb_fit_predict`).
        features: a fixed feature list for every window and instrument (None: Boruta).

    Returns:
        ``{"windows": [...], "summary": summarise(...), "selections": {SYM: [[window, features]]},
        "honest": honest_summary(...)}`` (timing, consistency, calibration: :mod:`tm_trainer.honest`).
    """
    syms = tuple(ds.instruments)
    names = list(ds.names)
    chosen: dict[str, list[str]] = {}
    selections: dict[str, list] = {s: [] for s in syms}
    windows: list[dict] = []
    series: dict[str, dict[str, list[np.ndarray]]] = {
        s: {k: [] for k in ("p", "momentum", "fwd", "ret_next", "ts")} for s in syms}
    every = max(1, cfg.boruta.reselect_every)
    fp = xgb_fit_predict(cfg) if fit_predict is None else fit_predict
    for sp in splits:
        train = _warm(sp.train)
        if features is not None and not chosen:
            for s in syms:
                chosen[s] = list(features)
                selections[s].append([sp.window, chosen[s]])
        elif features is None and (sp.window % every == 0 or not chosen):
            for s in syms:
                d = ds.instruments[s]
                ok = train[np.isfinite(d.fwd[train])]
                chosen[s] = boruta_select(d.X[ok], d.fwd[ok] > 0, names, cfg.boruta,
                                          cfg.seed, cfg.xgb.nthread)
                selections[s].append([sp.window, chosen[s]])
        block = {}
        for s in syms:
            cols = columns(names, chosen[s])
            d = ds.instruments[s]
            p = fp(ds, train, s, cols, sp.test)
            mom = d.X[sp.test, INDEX["ret_42"]]
            block[s] = score_block(p, mom, d.fwd[sp.test], d.ret_next[sp.test], cfg.costs.per_unit)
            for key, v in (("p", p), ("momentum", mom), ("fwd", d.fwd[sp.test]),
                           ("ret_next", d.ret_next[sp.test]), ("ts", ds.ts[sp.test])):
                series[s][key].append(v)
        windows.append({"window": sp.window, "train_rows": int(train.size),
                        "test_start_ms": int(ds.ts[sp.test[0]]), "test_end_ms": int(ds.ts[sp.test[-1]]),
                        "instruments": block})
        if progress:
            progress("window", sp.window)
    cat = {s: {k: np.concatenate(v) for k, v in d.items()} for s, d in series.items()}
    summary = summarise(windows, cat, cfg.costs.per_unit)
    if cfg.turnover_budget_per_year is not None:   # default: the report's bytes as they were
        summary["turnover"] = turnover_summary(cat, cfg.costs.per_unit,
                                               cfg.turnover_budget_per_year, cfg.turnover_band)
    return {"windows": windows, "summary": summary, "selections": selections,
            "honest": honest_summary(cat, cfg.costs.per_unit, cfg.gates,
                                     positions=gated_positions(cfg))}
