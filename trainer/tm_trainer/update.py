"""Weekly update (``tm train --update``): continue the production boosters on newer data.

The production bundle fixes each instrument's features, GARCH parameters and trees; the update
adds ``xgb.update_rounds`` trees per instrument fitted on the rows whose labels became known after
the production cut-off (``parent.train_end_ms``) and before the new ``cfg.train_end_ms``. Nothing
is re-selected (the trees address columns by position).

Gates, honestly: the update procedure is scored on the walk-forward windows that lie wholly after
the production cut-off *plus* the purge and horizon (so the parent's training data is purged from
every test window as strictly as a window's own training set). Window k's model is the parent
plus trees fitted on the new rows before that window's purged cut-off (none yet → the parent
alone). With fewer than one such window the update is refused with that reason: a weekly update
is promotable once ``purge + horizon + window`` bars (~6 weeks at the defaults) have passed since
the production cut-off.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from tm_common.models.bundle import BUILTIN_FAMILY, Bundle, canonical_json
from tm_quant.features.spec import INDEX, WARMUP_BARS
from tm_quant.garch import GarchParams

from tm_trainer.config import TrainConfig
from tm_trainer.data import DataError, RawInputs, build_dataset
from tm_trainer.evaluate import gate, score_block, summarise
from tm_trainer.honest import Trials, honest_gates, honest_summary, trial_key
from tm_trainer.model import booster_bytes, columns, continue_training, load_booster, predict
from tm_trainer.pipeline import Progress, TrainResult, load, signal_manifest, version_for
from tm_trainer.walkforward import make_splits


def train_update(cfg: TrainConfig, parent: Bundle, progress: Progress | None = None, *,
                 inputs: RawInputs | None = None) -> TrainResult:
    """Continue ``parent`` (a production ``signal`` bundle) up to ``cfg.train_end_ms``.

    ``inputs``: the data cut at ``cfg.train_end_ms`` (e.g. from the database); None = the files.

    Raises:
        DataError: the parent lacks an instrument or its cut-off, is of another family than the
            built-in xgboost, or there is no new labelled data.
    """
    t0 = time.perf_counter()
    pm = parent.manifest
    if pm.get("family", BUILTIN_FAMILY) != BUILTIN_FAMILY:
        raise DataError(f"production model {parent.version} is of family {pm['family']!r}: "
                        "--update continues xgboost boosters; retrain it with "
                        f"`tm train --family {pm['family']}`")
    parent_end = pm.get("train_end_ms")
    if not isinstance(parent_end, int):
        raise DataError(f"production model {parent.version} has no train_end_ms: cannot update")
    if cfg.train_end_ms <= parent_end:
        raise DataError(f"--train-end must be after the production cut-off ({parent_end} ms)")
    if pm["horizon_bars"] != cfg.horizon_bars:
        cfg = replace(cfg, horizon_bars=int(pm["horizon_bars"]))
    missing = [s for s in cfg.instruments if s not in pm["instruments"]]
    if missing:
        raise DataError(f"production model {parent.version} has no {', '.join(missing)}")
    if inputs is None:
        inputs = load(cfg)
    specs = {s: pm["instruments"][s] for s in cfg.instruments}
    ds = build_dataset(inputs, cfg.instruments, cfg.horizon_bars,
                       {s: GarchParams.from_dict(sp["garch"]) for s, sp in specs.items()})
    names, h = list(ds.names), cfg.horizon_bars
    for s, sp in specs.items():  # the live path warms up from this bar: it must not move
        if ds.instruments[s].first_bar_ms != int(sp["first_bar_ms"]):
            raise DataError(f"{s}: history starts at {ds.instruments[s].first_bar_ms} ms, the "
                            f"production model's features at {sp['first_bar_ms']} ms")
    boosters = {s: load_booster(parent.booster_bytes(sp["booster"]), cfg.xgb.nthread)
                for s, sp in specs.items()}
    feats = {s: list(sp["features"]) for s, sp in specs.items()}
    cut = int(np.searchsorted(ds.ts, parent_end))      # first row the parent never saw
    new_lo = max(cut - h, WARMUP_BARS - 1)              # first row whose label it did not know
    eligible = (ds.n - (cut + cfg.purge_bars + h)) // cfg.window_bars
    n_win = min(cfg.n_windows, max(0, eligible))
    windows: list[dict[str, Any]] = []
    series: dict[str, dict[str, list[np.ndarray]]] = {
        s: {k: [] for k in ("p", "momentum", "fwd", "ret_next", "ts")} for s in cfg.instruments}
    if n_win >= 1:
        for sp in make_splits(ds.n, n_win, cfg.window_bars, cfg.purge_bars, h, 1):
            rows = np.arange(new_lo, sp.train.size)
            block = {}
            for s in cfg.instruments:
                d, cols = ds.instruments[s], columns(names, feats[s])
                b = boosters[s]
                if rows.size and np.isfinite(d.fwd[rows]).any():
                    b = continue_training(b, d.X[rows][:, cols], d.fwd[rows], cfg.xgb, cfg.seed,
                                          cfg.xgb.update_rounds)
                p = predict(b, d.X[sp.test][:, cols])
                mom = d.X[sp.test, INDEX["ret_42"]]
                block[s] = score_block(p, mom, d.fwd[sp.test], d.ret_next[sp.test],
                                       cfg.costs.per_unit)
                for k, v in (("p", p), ("momentum", mom), ("fwd", d.fwd[sp.test]),
                             ("ret_next", d.ret_next[sp.test]), ("ts", ds.ts[sp.test])):
                    series[s][k].append(v)
            windows.append({"window": sp.window, "train_rows": int(rows.size),
                            "test_start_ms": int(ds.ts[sp.test[0]]),
                            "test_end_ms": int(ds.ts[sp.test[-1]]), "instruments": block})
            if progress:
                progress("window", sp.window)
        cat = {s: {k: np.concatenate(v) for k, v in d.items()} for s, d in series.items()}
        report: dict[str, Any] = {"windows": windows,
                                  "summary": summarise(windows, cat, cfg.costs.per_unit),
                                  "selections": {s: [[0, feats[s]]] for s in cfg.instruments},
                                  "honest": honest_summary(cat, cfg.costs.per_unit, cfg.gates)}
        passed, reasons = gate(report["summary"], cfg.gates.min_ic, cfg.gates.min_sharpe)
        # an update is one trial on its own (newer) data: the deflated Sharpe counts it alone
        trials = Trials(trial_key(cfg.instruments, int(ds.ts[cut]), cfg.train_end_ms), 1, 0.0)
        report["deflated_sharpe"], more = honest_gates(report["honest"], cfg.gates, trials)
        passed, reasons = passed and not more, reasons + more
    else:
        report = {"windows": [], "summary": summarise([], {}, cfg.costs.per_unit), "selections": {}}
        why = (f"no OOS window after the production cut-off plus the {cfg.purge_bars}+{h}-bar "
               f"purge (need {cfg.purge_bars + h + cfg.window_bars} bars after it, have {ds.n - cut})")
        passed, reasons = False, [why]
    rows = np.arange(new_lo, ds.n)
    files = {}
    for i, s in enumerate(cfg.instruments):
        d, cols = ds.instruments[s], columns(names, feats[s])
        ok = rows[np.isfinite(d.fwd[rows])]
        if ok.size == 0:
            raise DataError(f"{s}: no new labelled bars since the production cut-off")
        b = continue_training(boosters[s], d.X[ok][:, cols], d.fwd[ok], cfg.xgb, cfg.seed,
                              cfg.xgb.update_rounds)
        files[f"{s}.ubj"] = booster_bytes(b)
        if progress:
            progress("final", i)
    version = version_for("signal", cfg, ds.data_hash, parent.version)
    gate_info = {"passed": passed, "reasons": reasons, "min_ic": cfg.gates.min_ic,
                 "min_sharpe": cfg.gates.min_sharpe}
    files["walkforward.json"] = canonical_json(report)
    manifest = signal_manifest(version, ds, cfg, feats, {"oos": report["summary"], "gate": gate_info,
                                                         "update_rows": int(rows.size)}, parent.version,
                               calibration=(report.get("honest") or {}).get("calibration"))
    raw = Bundle(manifest, files).to_bytes()
    return TrainResult(signal_version=version, signal_bytes=raw, gate_passed=passed, reasons=reasons,
                       report=report, data_hash=ds.data_hash, features=feats,
                       params={"config": cfg.to_dict(), "update_of": parent.version,
                               "train_end_ms": int(cfg.train_end_ms),
                               "data": inputs.data_info()},
                       seed=cfg.seed, parent_version=parent.version,
                       timings_s={"total_s": time.perf_counter() - t0})
