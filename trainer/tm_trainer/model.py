"""Transfer learning with XGBoost: a pooled base model, per-instrument continuations, updates.

Design (ARCHITECTURE §7): for instrument S, a *base* model is trained on the rows of **all**
instruments pooled (same training window), using S's Boruta-selected columns; S's model then
continues from it (``xgb.train(..., xgb_model=base)``) on S's own rows: the base trees are kept
unchanged and new trees are added. xgboost continuation needs the same columns in the same order,
so the base is fitted per selected set rather than once on a union: one shared base would force
all instruments onto one feature list (and the signal contract is one list per instrument).
A weekly update continues again from the production booster with ``update_rounds`` more trees.

Label: ``forward log return > 0``; objective ``binary:logistic``, so the booster's output is
already a probability; the bundle's Platt calibration of it is fitted on the walk-forward's OOS
predictions (:mod:`tm_trainer.honest`). Trees need no scaling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xgboost as xgb

from tm_trainer.config import XgbConfig


def _dmatrix(X: np.ndarray, fwd: np.ndarray, nthread: int) -> xgb.DMatrix:
    return xgb.DMatrix(X, label=(fwd > 0).astype(np.float32), missing=np.nan, nthread=nthread)


def columns(names: Sequence[str], selected: Sequence[str]) -> list[int]:
    """Column indices of ``selected`` within ``names``."""
    index = {n: j for j, n in enumerate(names)}
    return [index[f] for f in selected]


def train_base(pooled: Sequence[tuple[np.ndarray, np.ndarray]], cfg: XgbConfig,
               seed: int) -> xgb.Booster:
    """Base booster on pooled (X, fwd) blocks (one per instrument, same columns), rows with a
    finite label only; ``cfg.base_rounds`` trees."""
    X = np.vstack([x for x, _ in pooled])
    fwd = np.concatenate([f for _, f in pooled])
    ok = np.isfinite(fwd)
    return xgb.train(cfg.params(seed), _dmatrix(X[ok], fwd[ok], cfg.nthread),
                     num_boost_round=cfg.base_rounds)


def continue_training(booster: xgb.Booster, X: np.ndarray, fwd: np.ndarray, cfg: XgbConfig,
                      seed: int, rounds: int) -> xgb.Booster:
    """A new booster = ``booster``'s trees + ``rounds`` trees fitted on (X, fwd) at
    ``cfg.instrument_eta``. The input booster is not modified.

    Raises:
        AssertionError: the result does not have exactly ``rounds`` more trees (the base trees
            must be kept).
    """
    ok = np.isfinite(fwd)
    before = booster.num_boosted_rounds()
    base_copy = xgb.Booster(model_file=booster.save_raw("ubj"))
    out = xgb.train(cfg.params(seed, eta=cfg.instrument_eta),
                    _dmatrix(X[ok], fwd[ok], cfg.nthread), num_boost_round=rounds,
                    xgb_model=base_copy)
    assert out.num_boosted_rounds() == before + rounds, "continuation lost the base trees"
    return out


def train_instrument(data: Mapping[str, tuple[np.ndarray, np.ndarray]], symbol: str,
                     cfg: XgbConfig, seed: int) -> tuple[xgb.Booster, xgb.Booster]:
    """(base, instrument) boosters for ``symbol``; ``data``: symbol → (X selected cols, fwd)."""
    base = train_base([data[s] for s in sorted(data)], cfg, seed)
    x, f = data[symbol]
    return base, continue_training(base, x, f, cfg, seed, cfg.instrument_rounds)


def predict(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """P(forward return > 0) per row, via ``inplace_predict`` (what the signal service calls)."""
    if X.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(booster.inplace_predict(np.ascontiguousarray(X, dtype=np.float64)),
                      dtype=np.float64)


def booster_bytes(booster: xgb.Booster) -> bytes:
    """UBJSON bytes of the booster (bundle member ``SYM.ubj``)."""
    return bytes(booster.save_raw("ubj"))


def load_booster(raw: bytes | bytearray, nthread: int = 2) -> xgb.Booster:
    b = xgb.Booster(model_file=bytearray(raw))
    b.set_param({"nthread": nthread})
    return b
