"""One training run: walk-forward OOS report, gates, the final candidate bundle, regime models.

Order of work (each step sees only data before ``cfg.train_end_ms``):

1. load the history up to the cut-off; common timeline; :func:`make_splits`;
2. walk-forward: GARCH fitted before the first window's training cut-off, features, then per
   window Boruta → pooled base → per-instrument continuation → OOS predictions; report + gates;
3. final candidate: GARCH refitted on the whole training span, Boruta re-run on it, base +
   per-instrument models on every labelled row; packed as a ``signal`` bundle
   (:mod:`tm_common.models.bundle`) with the OOS report inside;
4. regime bundle (:mod:`tm_trainer.regime_train`).

``--update`` (:func:`train_update`) instead continues the production boosters (see
:mod:`tm_trainer.update`). The result is a :class:`TrainResult`; registering and promoting is
:mod:`tm_trainer.registry_ops`' job. Same config + same data → the same bytes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tm_common.models.bundle import Bundle, canonical_json
from tm_quant.features.spec import WARMUP_BARS

from tm_trainer.config import TrainConfig
from tm_trainer.data import (
    DataError,
    Dataset,
    RawInputs,
    build_dataset,
    common_timeline,
    fit_garch_before,
    load_inputs,
)
from tm_trainer.evaluate import gate
from tm_trainer.model import booster_bytes, columns, train_instrument
from tm_trainer.regime_train import _day, train_regime
from tm_trainer.selection import boruta_select
from tm_trainer.walkforward import make_splits, run_walkforward

Progress = Callable[[str, int], None]


@dataclass
class TrainResult:
    """What a run produced. ``signal_bytes``/``regime_bytes`` are bundle bytes."""

    signal_version: str
    signal_bytes: bytes
    gate_passed: bool
    reasons: list[str]
    report: dict
    data_hash: str
    features: dict[str, list[str]]
    params: dict
    seed: int
    parent_version: str | None = None
    regime: dict | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict:
        """Registry metrics: top-level gate numbers, the "why", the full OOS report."""
        s = self.report["summary"]
        return {"mean_ic": s["mean_ic"], "sharpe": s["sharpe"], "hit_rate": s["hit_rate"],
                "baseline_mean_ic": s["baseline_mean_ic"], "baseline_sharpe": s["baseline_sharpe"],
                "gate_passed": self.gate_passed, "why": "; ".join(self.reasons) or "gates passed",
                "gate_reasons": self.reasons, "oos": self.report}


def load(cfg: TrainConfig) -> RawInputs:
    return load_inputs(cfg.instruments, end_ms=cfg.train_end_ms, directory=cfg.history_dir)


def plan_splits(inputs: RawInputs, cfg: TrainConfig):
    n = common_timeline(inputs, cfg.instruments).shape[0]
    try:
        return make_splits(n, cfg.n_windows, cfg.window_bars, cfg.purge_bars, cfg.horizon_bars,
                           max(cfg.min_train_bars, WARMUP_BARS + 100))
    except ValueError as e:
        raise DataError(str(e)) from e


def final_rows(ds: Dataset) -> np.ndarray:
    """Rows of the final model: warm, with a label known before the cut-off (all instruments)."""
    idx = np.arange(WARMUP_BARS - 1, ds.n)
    ok = np.ones(idx.size, dtype=bool)
    for d in ds.instruments.values():
        ok &= np.isfinite(d.fwd[idx])
    return idx[ok]


def signal_manifest(version: str, ds: Dataset, cfg: TrainConfig, features: dict[str, list[str]],
                    metrics: dict, parent: str | None) -> dict:
    inst = {s: {"booster": f"{s}.ubj", "features": features[s], "garch": d.garch.to_dict(),
                "first_bar_ms": d.first_bar_ms, "prob_calibration": {"a": 1.0, "b": 0.0}}
            for s, d in ds.instruments.items()}
    return {"kind": "signal", "version": version, "horizon_bars": ds.horizon_bars,
            "feature_names": list(ds.names), "instruments": inst, "metrics": metrics,
            "train_end_ms": int(cfg.train_end_ms), "seed": int(cfg.seed), "data_hash": ds.data_hash,
            "parent_version": parent, "objective": "binary:logistic (P(forward return > 0))"}


def version_for(kind: str, cfg: TrainConfig, data_hash: str, parent: str | None = None) -> str:
    """Deterministic version: kind, cut-off day, hash of (data, config, parent)."""
    h = hashlib.sha256(f"{kind}|{data_hash}|{cfg.digest()}|{parent}".encode()).hexdigest()
    return f"{kind}-{_day(cfg.train_end_ms)}-{h[:10]}"


def train(cfg: TrainConfig, progress: Progress | None = None, *, regime: bool = True,
          inputs: RawInputs | None = None) -> TrainResult:
    """Full training run (walk-forward + gates + final candidate + regime). See module docstring.

    ``inputs``: the data, already cut at ``cfg.train_end_ms`` (e.g. read from the database by
    :func:`tm_trainer.sources.load_db_inputs`); None = the CSV files (:func:`load`).

    Raises:
        DataError: missing/short history or too few bars for the windows asked for.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if inputs is None:
        inputs = load(cfg)
    splits = plan_splits(inputs, cfg)
    ts = common_timeline(inputs, cfg.instruments)
    wf_cut_ms = int(ts[splits[0].train.size])
    ds_wf = build_dataset(inputs, cfg.instruments, cfg.horizon_bars,
                          {s: fit_garch_before(inputs, s, wf_cut_ms) for s in cfg.instruments})
    timings["load_s"] = time.perf_counter() - t0
    report = run_walkforward(ds_wf, cfg, splits, progress)
    report["garch_fit_end_ms"] = wf_cut_ms
    timings["walkforward_s"] = time.perf_counter() - t0 - timings["load_s"]
    passed, reasons = gate(report["summary"], cfg.gates.min_ic, cfg.gates.min_sharpe)

    t1 = time.perf_counter()
    ds = build_dataset(inputs, cfg.instruments, cfg.horizon_bars,
                       {s: fit_garch_before(inputs, s, cfg.train_end_ms) for s in cfg.instruments})
    rows = final_rows(ds)
    names = list(ds.names)
    features, files = {}, {}
    for s, d in ds.instruments.items():
        features[s] = boruta_select(d.X[rows], d.fwd[rows] > 0, names, cfg.boruta, cfg.seed,
                                    cfg.xgb.nthread)
    for i, s in enumerate(cfg.instruments):
        cols = columns(names, features[s])
        data = {o: (ds.instruments[o].X[rows][:, cols], ds.instruments[o].fwd[rows])
                for o in cfg.instruments}
        base, booster = train_instrument(data, s, cfg.xgb, cfg.seed)
        assert booster.num_boosted_rounds() > base.num_boosted_rounds()
        files[f"{s}.ubj"] = booster_bytes(booster)
        if progress:
            progress("final", i)
    timings["final_s"] = time.perf_counter() - t1
    version = version_for("signal", cfg, ds.data_hash)
    gate_info = {"passed": passed, "reasons": reasons, "min_ic": cfg.gates.min_ic,
                 "min_sharpe": cfg.gates.min_sharpe}
    files["walkforward.json"] = canonical_json(report)
    manifest = signal_manifest(version, ds, cfg, features,
                               {"oos": report["summary"], "gate": gate_info,
                                "train_rows": int(rows.size)}, None)
    raw = Bundle(manifest, files).to_bytes()
    result = TrainResult(signal_version=version, signal_bytes=raw, gate_passed=passed,
                         reasons=reasons, report=report, data_hash=ds.data_hash, features=features,
                         params={"config": cfg.to_dict(), "xgb_params": cfg.xgb.params(cfg.seed),
                                 "train_end_ms": int(cfg.train_end_ms),
                                 "data": inputs.data_info()},
                         seed=cfg.seed, timings_s=timings)
    if regime:
        t2 = time.perf_counter()
        result.regime = train_regime(inputs, cfg, ds.data_hash, progress=progress)
        timings["regime_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    return result
