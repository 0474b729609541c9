"""Regime models: per instrument a GARCH(1,1)-t and a 4-state HMM fitted on the training window.

Observation of bar t (what the regime service must compute the same way):
``x_t = [r_t, ln(sigma_t)]`` with ``r_t = ln(c_t / c_{t-1})`` (decimal) and
``sigma_t = GarchFilter(garch).update(100 * r_t) / 100`` (the one-bar-ahead GARCH sigma after
bar t, decimal; the same number as the ``garch_vol`` feature), the filter started at
``first_bar_ms`` and fed every return from there.

There is no IC gate for regimes; the sanity gate is: finite log-likelihood and parameters, EM
result valid (``RegimeModel`` checks stochastic matrices and positive-definite covariances;
``fit_regime_model`` does not expose hmmlearn's convergence monitor, so this is the check
available), four distinct state means, and each of the 4 labels the most probable state on at
least ``min_state_share`` of the training bars.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
from tm_common.models.bundle import Bundle, npz_bytes
from tm_quant.garch import GarchFilter
from tm_quant.regime import STATE_LABELS, KellyFractions, RegimeFilter, fit_regime_model, regime_observation

from tm_trainer.config import TrainConfig
from tm_trainer.data import RawInputs, fit_garch_before

OBSERVATION = ("[r_t, ln(sigma_t)]: r_t = ln(c_t/c_{t-1}); sigma_t = GarchFilter(garch)"
               ".update(100*r_t)/100, filter started at first_bar_ms")


def _observations(close: np.ndarray, garch) -> np.ndarray:
    r = np.diff(np.log(close))
    sigma = GarchFilter(garch).run(r * 100.0) / 100.0
    return regime_observation(r, sigma)


def _sanity(model, X: np.ndarray, min_state_share: float) -> tuple[dict, list[str]]:
    f = RegimeFilter(model)
    lognorm, counts = 0.0, np.zeros(len(STATE_LABELS))
    for x in X:
        ll = f.log_likelihood(x)
        prior = model.startprob if f.alpha is None else f.alpha @ model.transmat
        lognorm += float(np.log(np.sum(prior * np.exp(ll - ll.max()))) + ll.max())
        counts[STATE_LABELS.index(f.update(x).label)] += 1
    share = counts / max(1, X.shape[0])
    reasons = []
    if not np.isfinite(lognorm) or not all(np.isfinite(a).all() for a in model.to_arrays().values()
                                           if a.dtype.kind == "f"):
        reasons.append("non-finite likelihood or parameters (EM did not converge)")
    if np.unique(np.round(model.means, 12), axis=0).shape[0] < len(STATE_LABELS):
        reasons.append("two states share the same mean")
    for k, lab in enumerate(STATE_LABELS):
        if share[k] < min_state_share:
            reasons.append(f"state {lab} is most probable on {share[k]:.2%} of bars "
                           f"(< {min_state_share:.0%}): fewer than 4 distinct labels")
    metrics = {"loglik_per_bar": round(lognorm / max(1, X.shape[0]), 8),
               "state_share": {lab: round(float(share[k]), 6) for k, lab in enumerate(STATE_LABELS)},
               "n_bars": int(X.shape[0])}
    return metrics, reasons


def train_regime(inputs: RawInputs, cfg: TrainConfig, data_hash: str, *,
                 min_state_share: float = 0.01,
                 progress: Callable[[str, int], None] | None = None) -> dict:
    """Fit GARCH + HMM per instrument on every loaded bar (all before ``cfg.train_end_ms``).

    Returns:
        ``{"version", "bytes" (bundle, or None when an instrument could not be fitted), "ok",
        "reasons", "metrics", "params"}``.
    """
    digest = hashlib.sha256(f"regime|{data_hash}|{cfg.digest()}".encode()).hexdigest()
    version = f"regime-{_day(cfg.train_end_ms)}-{digest[:10]}"
    kelly = dict(zip(STATE_LABELS, KellyFractions().as_array().tolist(), strict=True))
    inst, files, metrics, reasons = {}, {}, {}, []
    for i, sym in enumerate(cfg.instruments):
        b = inputs.bars[sym]
        garch = fit_garch_before(inputs, sym, cfg.train_end_ms)
        X = _observations(b["close"], garch)
        model, err = _fit(X, cfg)
        if model is None:
            reasons.append(f"{sym}: HMM fit failed on every attempt: {err}")
            continue
        m, why = _sanity(model, X, min_state_share)
        metrics[sym] = m
        reasons += [f"{sym}: {w}" for w in why]
        files[f"{sym}_hmm.npz"] = npz_bytes(**model.to_arrays())
        inst[sym] = {"hmm": f"{sym}_hmm.npz", "garch": garch.to_dict(), "kelly": kelly,
                     "first_bar_ms": int(b["timestamp"][0]), "observation": OBSERVATION}
        if progress:
            progress("regime", i)
    params = {"n_states": len(STATE_LABELS), "restarts": cfg.regime_restarts,
              "train_end_ms": int(cfg.train_end_ms)}
    if len(inst) < len(cfg.instruments):  # no model for some instrument: nothing to register
        return {"version": version, "bytes": None, "ok": False, "reasons": reasons,
                "metrics": {"instruments": metrics, "sanity_passed": False,
                            "sanity_reasons": reasons}, "params": params}
    manifest = {"kind": "regime", "version": version, "instruments": inst,
                "train_end_ms": int(cfg.train_end_ms), "seed": int(cfg.seed),
                "data_hash": data_hash, "metrics": {"instruments": metrics,
                                                    "sanity_passed": not reasons,
                                                    "sanity_reasons": reasons}}
    raw = Bundle(manifest, files).to_bytes()
    return {"version": version, "bytes": raw, "ok": not reasons, "reasons": reasons,
            "metrics": manifest["metrics"], "params": params}


def _fit(X: np.ndarray, cfg: TrainConfig, attempts: int = 3):
    """``fit_regime_model``, retried from other seeds (``seed + 1000 k``) when hmmlearn hits a
    degenerate (non positive-definite) state; ``(model, None)`` or ``(None, last error)``.
    hmmlearn's "not converging" log lines (a log-likelihood dip of ~1e-6 relative) are muted."""
    import logging

    log = logging.getLogger("hmmlearn")
    level = log.level
    log.setLevel(logging.ERROR)
    err = None
    try:
        for k in range(attempts):
            try:
                return fit_regime_model(X, cfg.seed + 1000 * k, n_restarts=cfg.regime_restarts), None
            except (ValueError, np.linalg.LinAlgError) as e:
                err = e
    finally:
        log.setLevel(level)
    return None, err


def _day(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y%m%d")
