"""The market model of one window of closes: returns, covariance, HRP budgets and the h-bar
return windows. It changes only when a bar arrives, so the state caches it between decisions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tm_risk.domain.hrp import risk_budgets
from tm_risk.domain.params import RiskParams
from tm_risk.domain.var import horizon_returns


@dataclass(frozen=True, slots=True)
class MarketModel:
    """``returns`` (T, N) aligned 4h log returns in ``params.symbols`` order (None: a symbol has
    no bars yet); ``budgets`` HRP risk budgets (sum 1); ``cov`` (N, N) and ``windows``
    (T − h + 1, N) for VaR, None when there are fewer than 2 returns."""

    returns: np.ndarray | None
    budgets: dict[str, float]
    cov: np.ndarray | None
    windows: np.ndarray | None

    @property
    def observations(self) -> int:
        return 0 if self.returns is None else int(self.returns.shape[0])


def build_model(returns: np.ndarray | None, params: RiskParams) -> MarketModel:
    if returns is None or returns.shape[0] < 2:
        return MarketModel(returns, risk_budgets(params.symbols, returns, params.hrp_min_obs),
                           None, None)
    cov = np.atleast_2d(np.cov(returns, rowvar=False))
    budgets = risk_budgets(params.symbols, returns, params.hrp_min_obs, cov)
    return MarketModel(returns, budgets, cov, horizon_returns(returns, params.var_horizon_bars))
