"""One training run: walk-forward OOS report, gates, the final candidate bundle, regime models.

Order of work (each step sees only data before ``cfg.train_end_ms``):

1. load the history up to the cut-off; common timeline; :func:`make_splits`;
2. walk-forward: GARCH fitted before the first window's training cut-off, features, then per
   window Boruta → pooled base → per-instrument continuation → OOS predictions; report + gates;
3. final candidate: GARCH refitted on the whole training span, Boruta re-run on it, base +
   per-instrument models on every labelled row; packed as a ``signal`` bundle
   (:mod:`tm_common.models.bundle`) with the OOS report inside;
4. regime bundle (:mod:`tm_trainer.regime_train`).

``family`` (``tm train --family NAME``): another signal model family (:mod:`tm_quant.families`)
replaces the xgboost models in steps 2 and 3 with its fit and predict, and Boruta with its fixed
feature list if it has one; its bundle holds ``SYM.npz`` arrays and names the family. Everything
else (data, splits, labels, OOS report, gates, costs, regime, registry) is the same code.

``--update`` (:func:`train_update`) instead continues the production boosters (see
:mod:`tm_trainer.update`). The result is a :class:`TrainResult`; registering and promoting is
:mod:`tm_trainer.registry_ops`' job. Same config + same data → the same bytes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from tm_common.models.bundle import Bundle, canonical_json
from tm_quant.families import BUILTIN, SignalFamily
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
from tm_trainer.families import arrays_member, family_fit_predict, fit_arrays, resolve
from tm_trainer.honest import PriorTrial, Trials, honest_gates, trial_id, trial_key
from tm_trainer.model import booster_bytes, columns, train_instrument
from tm_trainer.regime_train import _day, train_regime
from tm_trainer.selection import BorutaSelection, boruta_selection
from tm_trainer.turnover import gate_view
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
    family: str = BUILTIN
    boruta: dict[str, dict] = field(default_factory=dict)

    @property
    def metrics(self) -> dict:
        """Registry metrics: top-level gate numbers, the "why", the full OOS report."""
        s = self.report["summary"]
        h = self.report.get("honest") or {}
        d = self.report.get("deflated_sharpe") or {}
        extra = {} if not h else {
            "dsr": d.get("dsr"), "n_trials": d.get("n_trials"), "trial_key": d.get("trial_key"),
            "timing_t": h["timing"]["t_stat"], "timing_return": h["timing"]["return"],
            "positive_share": h["consistency"]["positive_share"],
            "calibration": h["calibration"], "unreachable_tiers": h["unreachable_tiers"]}
        return {"mean_ic": s["mean_ic"], "sharpe": s["sharpe"], "hit_rate": s["hit_rate"],
                "baseline_mean_ic": s["baseline_mean_ic"], "baseline_sharpe": s["baseline_sharpe"],
                "gate_passed": self.gate_passed, "why": "; ".join(self.reasons) or "gates passed",
                "gate_reasons": self.reasons, "oos": self.report, "family": self.family,
                **extra, **({"boruta": self.boruta} if self.boruta else {})}


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
                    metrics: dict, parent: str | None, family: str = BUILTIN,
                    calibration: dict | None = None,
                    boruta: dict[str, dict] | None = None) -> dict:
    """The ``signal`` manifest (contract: :mod:`tm_common.models.bundle`); per instrument the
    booster ``SYM.ubj`` (built-in family) or the family's arrays ``SYM.npz``. The built-in
    family's manifest has no ``family`` key (absent = ``xgboost``), so its bundles keep the bytes
    they had before families existed (a re-run registers the same version idempotently).

    ``calibration``: the Platt ``{"a", "b"}`` fitted on the walk-forward's OOS predictions
    (:mod:`tm_quant.calibration`; None = identity). ``boruta``: SYM → what Boruta confirmed and
    what ranking filled in (:class:`tm_trainer.selection.BorutaSelection`), under
    ``instruments.SYM.boruta``."""
    member = {"booster": "{}.ubj"} if family == BUILTIN else {"model": "{}.npz"}
    cal = calibration or {"a": 1.0, "b": 0.0}
    inst = {s: {**{k: v.format(s) for k, v in member.items()}, "features": features[s],
                "garch": d.garch.to_dict(), "first_bar_ms": d.first_bar_ms,
                "prob_calibration": {"a": float(cal["a"]), "b": float(cal["b"])},
                **({"boruta": boruta[s]} if boruta and s in boruta else {})}
            for s, d in ds.instruments.items()}
    objective = "binary:logistic" if family == BUILTIN else f"family {family}"
    named = {} if family == BUILTIN else {"family": family}
    return {"kind": "signal", "version": version, **named, "horizon_bars": ds.horizon_bars,
            "feature_names": list(ds.names), "instruments": inst, "metrics": metrics,
            "train_end_ms": int(cfg.train_end_ms), "seed": int(cfg.seed), "data_hash": ds.data_hash,
            "parent_version": parent, "objective": f"{objective} (P(forward return > 0))"}


def version_for(kind: str, cfg: TrainConfig, data_hash: str, parent: str | None = None,
                trials: Trials | None = None) -> str:
    """Deterministic version: kind, cut-off day, hash of (data, config, parent) and, when other
    trials on the same data exist, of the trial count and variance (its deflated Sharpe, and so
    its bundle, depends on them: the same configuration re-run after other trials is registered
    again, with the count it was gated with)."""
    extra = "" if trials is None or trials.n == 1 else \
        f"|trials={trials.n}|var={trials.sharpe_variance!r}"
    h = hashlib.sha256(f"{kind}|{data_hash}|{cfg.digest()}|{parent}{extra}".encode()).hexdigest()
    return f"{kind}-{_day(cfg.train_end_ms)}-{h[:10]}"


def _final_model(fam: SignalFamily | None, ds: Dataset, rows: np.ndarray, cfg: TrainConfig,
                 features: dict[str, list[str]], s: str) -> tuple[str, bytes]:
    """(member name, bytes) of ``s``'s final model on ``rows``."""
    names = list(ds.names)
    cols = columns(names, features[s])
    if fam is not None:
        d = ds.instruments[s]
        arrays = fit_arrays(fam, d.X[rows][:, cols], d.label[rows], tuple(features[s]), s, cfg.seed)
        return f"{s}.npz", arrays_member(arrays)
    data = {o: (ds.instruments[o].X[rows][:, cols], ds.instruments[o].fwd[rows])
            for o in cfg.instruments}
    base, booster = train_instrument(data, s, cfg.xgb, cfg.seed)
    assert booster.num_boosted_rounds() > base.num_boosted_rounds()
    return f"{s}.ubj", booster_bytes(booster)


def train(cfg: TrainConfig, progress: Progress | None = None, *, regime: bool = True,
          inputs: RawInputs | None = None, family: str = BUILTIN,
          prior_trials: Iterable[PriorTrial] = ()) -> TrainResult:
    """Full training run (walk-forward + gates + final candidate + regime). See module docstring.

    ``inputs``: the data, already cut at ``cfg.train_end_ms`` (e.g. read from the database by
    :func:`tm_trainer.sources.load_db_inputs`); None = the CSV files (:func:`load`).
    ``family``: the signal model family (``xgboost``: the built-in; else registered in
    :data:`tm_quant.families.FAMILIES`).
    ``prior_trials``: the candidates already registered (:func:`prior_trials_of`); those on the
    same data (:func:`tm_trainer.honest.trial_key`) set the trial count of the deflated Sharpe.

    Raises:
        DataError: missing/short history or too few bars for the windows asked for.
        UnknownFamily: ``family`` is not registered.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    fam = resolve(family)
    if inputs is None:
        inputs = load(cfg)
    splits = plan_splits(inputs, cfg)
    ts = common_timeline(inputs, cfg.instruments)
    wf_cut_ms = int(ts[splits[0].train.size])
    ds_wf = build_dataset(inputs, cfg.instruments, cfg.horizon_bars,
                          {s: fit_garch_before(inputs, s, wf_cut_ms) for s in cfg.instruments},
                          cfg.label)
    timings["load_s"] = time.perf_counter() - t0
    report = run_walkforward(ds_wf, cfg, splits, progress,
                             fit_predict=None if fam is None else family_fit_predict(fam, cfg.seed),
                             features=None if fam is None else fam.features)
    report["garch_fit_end_ms"] = wf_cut_ms
    report["family"] = family
    timings["walkforward_s"] = time.perf_counter() - t0 - timings["load_s"]
    passed, reasons = gate(gate_view(report["summary"]), cfg.gates.min_ic, cfg.gates.min_sharpe)
    trials = Trials.count(trial_key(cfg.instruments, int(ts[0]), cfg.train_end_ms),
                          trial_id(family, cfg.digest()), gate_view(report["summary"])["sharpe"],
                          prior_trials)
    report["deflated_sharpe"], more = honest_gates(report["honest"], cfg.gates, trials)
    passed, reasons = passed and not more, reasons + more

    t1 = time.perf_counter()
    ds = build_dataset(inputs, cfg.instruments, cfg.horizon_bars,
                       {s: fit_garch_before(inputs, s, cfg.train_end_ms) for s in cfg.instruments},
                       cfg.label)
    rows = final_rows(ds)
    names = list(ds.names)
    features: dict[str, list[str]] = {}
    boruta: dict[str, dict] = {}
    files: dict[str, bytes] = {}
    for s, d in ds.instruments.items():
        if fam is not None and fam.features is not None:
            features[s] = list(fam.features)
            continue
        sel: BorutaSelection = boruta_selection(d.X[rows], d.fwd[rows] > 0, names, cfg.boruta,
                                                cfg.seed, cfg.xgb.nthread)
        features[s], boruta[s] = sel.selected, sel.to_dict()
    for i, s in enumerate(cfg.instruments):
        member, raw_model = _final_model(fam, ds, rows, cfg, features, s)
        files[member] = raw_model
        if progress:
            progress("final", i)
    timings["final_s"] = time.perf_counter() - t1
    version = version_for("signal" if fam is None else f"signal-{family}", cfg, ds.data_hash,
                          trials=trials)
    gate_info = {"passed": passed, "reasons": reasons, "min_ic": cfg.gates.min_ic,
                 "min_sharpe": cfg.gates.min_sharpe, "min_dsr": cfg.gates.min_dsr,
                 "min_timing_t": cfg.gates.min_timing_t,
                 "min_positive_share": cfg.gates.min_positive_share,
                 "deflated_sharpe": report["deflated_sharpe"]}
    if boruta:
        report["boruta"] = boruta
    files["walkforward.json"] = canonical_json(report)
    manifest = signal_manifest(version, ds, cfg, features,
                               {"oos": report["summary"], "gate": gate_info,
                                "train_rows": int(rows.size)}, None, family,
                               calibration=report["honest"]["calibration"], boruta=boruta)
    raw = Bundle(manifest, files).to_bytes()
    model_params = {"xgb_params": cfg.xgb.params(cfg.seed)} if fam is None else {}
    result = TrainResult(signal_version=version, signal_bytes=raw, gate_passed=passed,
                         reasons=reasons, report=report, data_hash=ds.data_hash, features=features,
                         params={"family": family, "config": cfg.to_dict(), **model_params,
                                 "train_end_ms": int(cfg.train_end_ms),
                                 "data": inputs.data_info(), "trial_key": trials.key,
                                 "trial_id": trial_id(family, cfg.digest())},
                         seed=cfg.seed, timings_s=timings, family=family, boruta=boruta)
    if regime:
        t2 = time.perf_counter()
        result.regime = train_regime(inputs, cfg, ds.data_hash, progress=progress)
        timings["regime_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    return result


def prior_trials_of(records: Iterable) -> list[PriorTrial]:
    """The registry's signal records (``ModelRecord``s) that name a trial, as :class:`PriorTrial`s
    (records registered before trials were counted have no ``trial_key`` and are not counted)."""
    out = []
    for r in records:
        key, tid = r.params.get("trial_key"), r.params.get("trial_id")
        if getattr(r, "kind", "signal") == "signal" and isinstance(key, str) and isinstance(tid, str):
            sh = r.metrics.get("sharpe")
            out.append(PriorTrial(key, tid, float(sh) if isinstance(sh, (int, float)) else None))
    return out
