"""Score a signal bundle on bars after its training cut-off (a held-out period).

The bundle is used exactly as the signal service would: features from ``compute_batch`` over the
history from ``first_bar_ms`` with the bundle's GARCH parameters, columns picked by name,
``inplace_predict`` (or the bundle's family's ``predict``), calibration applied. Nothing here feeds back into training or gating: it is
a report on data the candidate never saw (by default 2025-01-01 onwards, the demo replay window).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tm_common.models.bundle import BUILTIN_FAMILY, Bundle, calibrate
from tm_quant.features.spec import FEATURE_NAMES, INDEX
from tm_quant.garch import GarchParams

from tm_trainer.config import CostConfig
from tm_trainer.data import Dataset, build_dataset, load_inputs
from tm_trainer.evaluate import score_block, summarise
from tm_trainer.families import predict_rows, resolve
from tm_trainer.model import columns, load_booster, predict


def instrument_probabilities(bundle: Bundle, symbol: str, X: np.ndarray) -> np.ndarray:
    """P(up) of ``bundle``'s model for ``symbol`` on feature rows ``X`` (``FEATURE_NAMES``
    columns): the booster's ``inplace_predict`` (built-in family) or the family's numpy
    ``predict`` on its ``.npz`` arrays, then the calibration: what the trainer validated."""
    m = bundle.manifest
    spec = m["instruments"][symbol]
    x = X[:, columns(FEATURE_NAMES, spec["features"])]
    fam = resolve(str(m.get("family", BUILTIN_FAMILY)))
    if fam is None:
        raw = predict(load_booster(bundle.booster_bytes(spec["booster"])), x)
    else:
        raw = predict_rows(fam, bundle.npz(spec["model"]), x)
    return np.array([calibrate(v, spec["prob_calibration"]) for v in raw])


def bundle_predictions(bundle: Bundle, *, start_ms: int | None = None, end_ms: int | None = None,
                       history_dir: str | Path | None = None
                       ) -> tuple[Dataset, np.ndarray, dict[str, np.ndarray]]:
    """(dataset, rows, {symbol: P(up) per row}) of ``bundle`` on bars with ``start_ms <= open
    time < end_ms`` (``start_ms`` defaults to the bundle's ``train_end_ms``), features as the
    signal service computes them (history from ``first_bar_ms``, the bundle's GARCH)."""
    m = bundle.manifest
    start = int(m["train_end_ms"] if start_ms is None else start_ms)
    syms = tuple(m["instruments"])
    inputs = load_inputs(syms, end_ms=end_ms, directory=history_dir)
    garch = {s: GarchParams.from_dict(m["instruments"][s]["garch"]) for s in syms}
    ds = build_dataset(inputs, syms, int(m["horizon_bars"]), garch)
    rows = np.flatnonzero(ds.ts >= start)
    return ds, rows, {s: instrument_probabilities(bundle, s, ds.instruments[s].X[rows])
                      for s in syms}


def score_bundle(bundle: Bundle, *, start_ms: int | None = None, end_ms: int | None = None,
                 history_dir: str | Path | None = None, costs: CostConfig | None = None) -> dict:
    """OOS summary (as :func:`tm_trainer.evaluate.summarise`) of ``bundle`` on bars with
    ``start_ms <= open time < end_ms``; ``start_ms`` defaults to the bundle's ``train_end_ms``.
    The period is scored as one window per instrument (``mean_ic`` = mean of instrument ICs)."""
    ds, rows, probs = bundle_predictions(bundle, start_ms=start_ms, end_ms=end_ms,
                                         history_dir=history_dir)
    series, block = {}, {}
    for s, p in probs.items():
        d = ds.instruments[s]
        series[s] = {"p": p, "momentum": d.X[rows, INDEX["ret_42"]], "fwd": d.fwd[rows],
                     "ret_next": d.ret_next[rows]}
    cost = (costs or CostConfig()).per_unit
    for s, v in series.items():
        block[s] = score_block(v["p"], v["momentum"], v["fwd"], v["ret_next"], cost)
    out = summarise([{"window": 0, "instruments": block}], series, cost)
    out["start_ms"] = int(bundle.manifest["train_end_ms"] if start_ms is None else start_ms)
    out["end_ms"] = int(ds.ts[rows[-1]]) if rows.size else None
    return out
