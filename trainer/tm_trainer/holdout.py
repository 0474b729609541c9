"""Score a signal bundle on bars after its training cut-off (a held-out period).

The bundle is used exactly as the signal service would: features from ``compute_batch`` over the
history from ``first_bar_ms`` with the bundle's GARCH parameters, columns picked by name,
``inplace_predict``, calibration applied. Nothing here feeds back into training or gating: it is
a report on data the candidate never saw (by default 2025-01-01 onwards, the demo replay window).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tm_common.models.bundle import Bundle, calibrate
from tm_quant.features.spec import INDEX
from tm_quant.garch import GarchParams

from tm_trainer.config import CostConfig
from tm_trainer.data import build_dataset, load_inputs
from tm_trainer.evaluate import score_block, summarise
from tm_trainer.model import columns, load_booster, predict


def score_bundle(bundle: Bundle, *, start_ms: int | None = None, end_ms: int | None = None,
                 history_dir: str | Path | None = None, costs: CostConfig | None = None) -> dict:
    """OOS summary (as :func:`tm_trainer.evaluate.summarise`) of ``bundle`` on bars with
    ``start_ms <= open time < end_ms``; ``start_ms`` defaults to the bundle's ``train_end_ms``.
    The period is scored as one window per instrument (``mean_ic`` = mean of instrument ICs)."""
    m = bundle.manifest
    start = int(m["train_end_ms"] if start_ms is None else start_ms)
    syms = tuple(m["instruments"])
    inputs = load_inputs(syms, end_ms=end_ms, directory=history_dir)
    garch = {s: GarchParams.from_dict(m["instruments"][s]["garch"]) for s in syms}
    ds = build_dataset(inputs, syms, int(m["horizon_bars"]), garch)
    rows = np.flatnonzero(ds.ts >= start)
    names = list(ds.names)
    series, block = {}, {}
    for s in syms:
        spec = m["instruments"][s]
        d = ds.instruments[s]
        raw = predict(load_booster(bundle.booster_bytes(spec["booster"])),
                      d.X[rows][:, columns(names, spec["features"])])
        p = np.array([calibrate(x, spec["prob_calibration"]) for x in raw])
        series[s] = {"p": p, "momentum": d.X[rows, INDEX["ret_42"]], "fwd": d.fwd[rows],
                     "ret_next": d.ret_next[rows]}
    cost = (costs or CostConfig()).per_unit
    for s, v in series.items():
        block[s] = score_block(v["p"], v["momentum"], v["fwd"], v["ret_next"], cost)
    out = summarise([{"window": 0, "instruments": block}], series, cost)
    out["start_ms"] = start
    out["end_ms"] = int(ds.ts[rows[-1]]) if rows.size else None
    return out
