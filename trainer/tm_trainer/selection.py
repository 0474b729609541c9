"""Boruta feature selection on one training window (BorutaPy with an ``XGBClassifier`` estimator).

Only the rows given are seen (the caller passes a training window, never test data). BorutaPy
needs finite inputs: NaN (warm-up, missing side series) is replaced by a sentinel far below every
feature's range, which a tree separates like xgboost's own missing-value branch; the models
themselves are trained on the NaN values.

Result: between ``min_features`` and ``max_features`` names. Confirmed features first; fewer than
``min_features`` confirmed → filled by Boruta's ranking (tentative, then the best rejected);
more than ``max_features`` → the top ones by ranking, ties broken by the median importance over
Boruta's iterations (then by feature order). Returned in ``FEATURE_NAMES`` order, which is the
model's column order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tm_trainer.config import BorutaConfig

_SENTINEL = -1e9


def candidate_columns(X: np.ndarray, min_coverage: float) -> np.ndarray:
    """Indices of columns with at least ``min_coverage`` finite values and some variation."""
    fin = np.isfinite(X)
    keep = []
    for j in range(X.shape[1]):
        col = X[fin[:, j], j]
        if fin[:, j].mean() >= min_coverage and col.size > 1 and np.ptp(col) > 0:
            keep.append(j)
    return np.array(keep, dtype=int)


@dataclass(frozen=True)
class BorutaSelection:
    """What Boruta decided: ``selected`` (the model's features, ``names`` order) = ``confirmed``
    (Boruta's own "confirmed" verdict) + ``filled`` (added by ranking to reach
    ``min_features``: tentative or rejected by Boruta); trimmed to ``max_features`` by ranking."""

    selected: list[str]
    confirmed: list[str]
    filled: list[str]

    def to_dict(self) -> dict:
        return {"confirmed": self.confirmed, "filled_by_ranking": self.filled,
                "none_confirmed": not self.confirmed}


def boruta_select(X: np.ndarray, y: np.ndarray, names: Sequence[str], cfg: BorutaConfig,
                  seed: int, nthread: int = 2) -> list[str]:
    """The selected names of :func:`boruta_selection` (the model's feature list)."""
    return boruta_selection(X, y, names, cfg, seed, nthread).selected


def boruta_selection(X: np.ndarray, y: np.ndarray, names: Sequence[str], cfg: BorutaConfig,
                     seed: int, nthread: int = 2) -> BorutaSelection:
    """Select features with Boruta on one training window.

    Args:
        X: (n, k) training features (NaN allowed), rows oldest first; only the last
            ``cfg.max_rows`` rows are used.
        y: (n,) binary labels (forward return > 0).
        names: the k column names (``FEATURE_NAMES`` order).
        cfg: Boruta settings (9–13 features by default).
        seed: ``random_state`` of BorutaPy (and through it of every estimator fit).

    Returns:
        The selection: names in the order of ``names``, confirmed and filled told apart.

    Raises:
        ValueError: fewer candidate columns than ``cfg.min_features``, or a single label class.
    """
    from boruta import BorutaPy
    from xgboost import XGBClassifier

    X, y = X[-cfg.max_rows:], np.asarray(y, dtype=int)[-cfg.max_rows:]
    cand = candidate_columns(X, cfg.min_coverage)
    if cand.size < cfg.min_features:
        raise ValueError(f"only {cand.size} usable feature columns, need {cfg.min_features}")
    if np.unique(y).size < 2:
        raise ValueError("the training window has a single label class")
    Xc = np.where(np.isfinite(X[:, cand]), X[:, cand], _SENTINEL)
    est = XGBClassifier(max_depth=cfg.max_depth, learning_rate=0.1, subsample=0.8,
                        colsample_bytree=0.5, tree_method="hist", max_bin=32, n_jobs=nthread,
                        verbosity=0)
    sel = BorutaPy(est, n_estimators=cfg.n_estimators, max_iter=cfg.max_iter, random_state=seed,
                   early_stopping=True, n_iter_no_change=cfg.n_iter_no_change, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel.fit(Xc, y)
    hist = np.asarray(sel.importance_history_)[1:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: rejected early
        med = np.nan_to_num(np.nanmedian(hist, axis=0), nan=-np.inf) if hist.size else \
            np.zeros(cand.size)
    ranking = np.asarray(sel.ranking_)
    order = sorted(range(cand.size), key=lambda i: (int(ranking[i]), -float(med[i]), i))
    support = np.asarray(sel.support_, dtype=bool)
    n_conf = int(np.sum(support))
    k = min(max(n_conf, cfg.min_features), cfg.max_features, cand.size)
    chosen = {int(cand[i]) for i in order[:k]}
    confirmed = {int(cand[i]) for i in range(cand.size) if support[i]}
    return BorutaSelection(selected=[names[j] for j in sorted(chosen)],
                           confirmed=[names[j] for j in sorted(chosen & confirmed)],
                           filled=[names[j] for j in sorted(chosen - confirmed)])
