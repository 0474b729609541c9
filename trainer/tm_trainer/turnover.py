"""Turnover of the OOS strategy, measured, and the budgeted (smoothed) strategy when a budget is
set (``TrainConfig.turnover_budget_per_year``; the rule: :mod:`tm_quant.turnover`).

Reported when a budget is set, as ``report["summary"]["turnover"]`` (without one the report
keeps its bytes; each instrument's ``turnover`` there is the sign strategy's units over the OOS
bars): the sign strategy's turnover a year per instrument; the positions smoothed by hysteresis
(``turnover_band``) and a minimum holding time that meets the budget by construction, with their
measured turnover a year; the equal-weight portfolio's Sharpe and return after the same costs.
The gates then judge that smoothed strategy, the one the budget says would be traded.
"""

from __future__ import annotations

import numpy as np
from tm_quant.turnover import hold_bars_for, position_pnl, smoothed_positions, turnover_per_year

from tm_trainer.evaluate import sharpe


def _r(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def turnover_summary(series: dict[str, dict[str, np.ndarray]], cost_per_unit: float,
                     budget_per_year: float | None, band: float = 0.0) -> dict:
    """``series``: SYM → {"p", "ret_next", ...} over the OOS bars in time order."""
    sign = {s: _r(turnover_per_year(np.sign(np.nan_to_num(d["p"] - 0.5))))
            for s, d in series.items()}
    out: dict = {"sign_strategy_per_year": sign, "budget_per_year": budget_per_year}
    if budget_per_year is None:
        return out
    hold = hold_bars_for(budget_per_year)
    pos = {s: smoothed_positions(d["p"], band=band, hold_bars=hold) for s, d in series.items()}
    pnl = [position_pnl(pos[s], d["ret_next"], cost_per_unit) for s, d in series.items()]
    m = min(x.size for x in pnl) if pnl else 0
    port = np.mean([x[:m] for x in pnl], axis=0) if m else np.zeros(0)
    out.update({"hold_bars": hold, "band": band,
                "smoothed_per_year": {s: _r(turnover_per_year(v)) for s, v in pos.items()},
                "smoothed_sharpe": _r(sharpe(port)), "smoothed_return": _r(float(np.sum(port)))})
    return out


def gate_view(summary: dict) -> dict:
    """The summary the gates judge: with a budget, the smoothed strategy's Sharpe in place of
    the sign strategy's (the IC is the predictions', unchanged)."""
    t = summary.get("turnover") or {}
    if t.get("budget_per_year") is None:
        return summary
    return {**summary, "sharpe": t.get("smoothed_sharpe")}
