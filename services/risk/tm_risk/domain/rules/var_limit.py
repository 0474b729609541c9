"""1-day VaR (:mod:`tm_risk.domain.var`) of the portfolio with this target: fewer than
``var_min_obs`` (60) aligned 4h returns → a target that increases the instrument's exposure is
rejected (``var_unavailable``), a reduction passes; over ``var_limit`` (5 %) → every target × k =
limit / VaR (the others by ``var_rescale``); k < ``var_min_scale`` (0.1) → an increasing target is
rejected (``var_cannot_fit``), a reduction passes unscaled.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tm_risk.domain.rules.base import Context, Rejection, Target, rule
from tm_risk.domain.var import VarResult, fit_scale, portfolio_var


def apply(target: Target, ctx: Context) -> Target | Rejection:
    p, t, model = ctx.params, target.fraction, ctx.model
    cur_f = ctx.exposures[ctx.instrument]
    increases = abs(t) > abs(cur_f) or t * cur_f < 0
    n_obs = model.observations
    if n_obs < p.var_min_obs:
        if increases:
            return ctx.reject("var_unavailable", f"VaR needs {p.var_min_obs} aligned 4h returns, "
                              f"have {n_obs}")
        return target.note("VaR unavailable; reduction allowed")
    assert model.returns is not None      # observations > 0
    w = np.array([t if s == ctx.instrument else ctx.exposures[s] for s in p.symbols], dtype=float)
    var = portfolio_var(w, model.returns, p.var_horizon_bars, p.var_confidence,
                        cov=model.cov, windows=model.windows)
    if var.value <= p.var_limit:
        return replace(target, var=var)
    k = fit_scale(var.value, p.var_limit)
    if k < p.var_min_scale:
        if increases:
            return ctx.reject("var_cannot_fit",
                              f"VaR {var.value:.2%} > limit {p.var_limit:.2%}: fitting needs "
                              f"x{k:.4f} < min scale {p.var_min_scale:g}")
        return replace(target, var=var).note(f"VaR {var.value:.2%} over limit; reduction allowed")
    scaled = VarResult(var.parametric * k, var.historical * k, var.observations)
    return replace(target, fraction=t * k, scale=k, var=scaled).note(
        f"VaR {var.value:.2%} > {p.var_limit:.2%}: all targets x{k:.4f}")


RULE = rule("var_limit", apply, __doc__)
