"""GARCH(1,1) with Student-t innovations: fit once (``arch``), filter bar by bar (pure recursion).

Units. Everything in this module is in **percent-scaled returns**, as ``arch`` recommends for
numerical stability: a 4h log return of 0.0123 is passed as ``1.23``. So ``mu`` is in percent,
``omega`` and variances are in percent², and :meth:`GarchFilter.update` returns a per-bar sigma
in percent. Divide by 100 to get a decimal per-bar volatility.

Model (arch's ``ConstantMean`` + ``GARCH(p=1, q=1)`` + ``StudentsT``)::

    r_t       = mu + eps_t,     eps_t = sigma_t * z_t,   z_t ~ standardised Student-t(nu)
    sigma2_t  = omega + alpha * eps_{t-1}^2 + beta * sigma2_{t-1}

arch starts the recursion from a *backcast* b (an exponentially weighted mean of the first 75
squared residuals at the fitted mean): ``sigma2_0 = omega + (alpha + beta) * b``. :class:`GarchFilter` reproduces that
exactly when given the same backcast, so ``GarchFilter(p).update(r_t)`` after the last observation
equals ``arch``'s ``forecast(horizon=1)`` (tested). The backcast looks at the first 75 residuals of
the *fitting* sample only; a filter run over other data starts from ``params.backcast`` as a fixed
number, so it never peeks ahead.

Stationarity. ``arch`` bounds ``alpha + beta <= 1``, and on 4h crypto returns the likelihood often
peaks on that boundary (an integrated GARCH: persistence 1.0 or a hair above after the optimiser's
tolerance). Such a fit has no long-run variance: its multi-step forecast never mean-reverts, and a
shock is remembered forever. So the two ends decide:

- training (:func:`fit_garch`) never returns a non-stationary model: a fit with persistence above
  ``max_persistence`` (default :data:`MAX_PERSISTENCE`) is *constrained* onto the stationary region
  by variance targeting: ``alpha`` (the shock response) is kept, ``beta = max_persistence - alpha``
  and ``omega = var(r) * (1 - max_persistence)``, so the long-run variance is the sample's. The
  result says so (:attr:`GarchParams.constrained`);
- the live filter refuses a non-stationary parameter set (:class:`NonStationaryGarch` from
  :class:`GarchParams`), so a model bundle carrying one is unusable at load, never served.

``arch`` is imported lazily inside :func:`fit_garch` only: the live services import
:class:`GarchFilter` without paying for (or depending on) the estimator.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# arch's backcast: EWMA weights 0.94**i over the first 75 residuals (arch.univariate.volatility).
_BACKCAST_TAU = 75
_BACKCAST_DECAY = 0.94
# A shock's half-life at 0.999 is ~693 bars (~115 days of 4h bars): slow, but mean-reverting.
MAX_PERSISTENCE = 0.999


class NonStationaryGarch(ValueError):
    """``alpha + beta >= 1``: no long-run variance, a forecast that never mean-reverts."""


@dataclass(frozen=True, slots=True)
class GarchParams:
    """Fitted GARCH(1,1)-t parameters, percent-scaled (see module docstring).

    Attributes:
        mu: constant mean of returns, percent per bar (4h returns: typically within ±0.1).
        omega: variance intercept, percent² (> 0).
        alpha: ARCH coefficient, [0, 1).
        beta: GARCH coefficient, [0, 1); ``alpha + beta < 1`` (stationary) is required.
        nu: Student-t degrees of freedom (> 2).
        backcast: the recursion's start value ``b`` in percent² (``sigma2_0 = omega +
            (alpha + beta) * b``); ``None`` = start from the unconditional variance.
        constrained: the maximum-likelihood fit was non-stationary and these parameters are its
            variance-targeted projection (module docstring), not arch's estimate.

    Raises:
        NonStationaryGarch: ``alpha + beta >= 1``.
        ValueError: any other invalid parameter.
    """

    mu: float
    omega: float
    alpha: float
    beta: float
    nu: float = 8.0
    backcast: float | None = None
    constrained: bool = False

    def __post_init__(self) -> None:
        if not (self.omega > 0 and self.alpha >= 0 and self.beta >= 0):
            raise ValueError(f"GARCH needs omega > 0, alpha >= 0, beta >= 0: {self}")
        if self.alpha + self.beta >= 1.0:
            raise NonStationaryGarch(
                f"GARCH persistence alpha + beta = {self.alpha + self.beta!r} >= 1 is not stationary "
                "(no long-run variance); refit with fit_garch, which constrains it")
        if self.backcast is not None and not self.backcast > 0:
            raise ValueError(f"backcast must be > 0 percent², got {self.backcast}")

    @property
    def persistence(self) -> float:
        """``alpha + beta``: how slowly a volatility shock decays (per bar)."""
        return self.alpha + self.beta

    @property
    def unconditional_variance(self) -> float:
        """Long-run variance ``omega / (1 - alpha - beta)`` in percent² (``inf`` if not stationary)."""
        p = self.persistence
        return self.omega / (1.0 - p) if p < 1.0 else math.inf

    def to_dict(self) -> dict[str, float | bool | None]:
        """Plain JSON-ready dict (model registry artifact)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> GarchParams:
        """Inverse of :meth:`to_dict` (raises :class:`NonStationaryGarch` for a persistence >= 1)."""
        def num(k: str) -> float | None:
            v = d.get(k)
            return None if v is None else float(v)  # type: ignore[arg-type]
        kw: dict[str, float | None] = {k: num(k) for k in ("mu", "omega", "alpha", "beta", "nu", "backcast")
                                       if k in d}
        return cls(**kw, constrained=bool(d.get("constrained", False)))  # type: ignore[arg-type]


# Generic 4h crypto values (per-bar sigma ~0.9 %), not fitted on any evaluation data: used by the
# feature code when the caller has no fitted parameters yet.
DEFAULT_GARCH_PARAMS = GarchParams(mu=0.0, omega=0.016, alpha=0.08, beta=0.90, nu=5.0)


def arch_backcast(resids_pct: np.ndarray) -> float:
    """arch's backcast: EWMA (decay 0.94) of the first ≤75 squared residuals, percent²."""
    e = np.asarray(resids_pct, dtype=np.float64)
    tau = min(_BACKCAST_TAU, e.shape[0])
    w = _BACKCAST_DECAY ** np.arange(tau)
    w = w / sum(w)  # builtin sum, as arch does, so the number is bit-identical
    return float(np.sum((e[:tau] ** 2.0) * w))


def constrained_shape(alpha: float, max_persistence: float) -> tuple[float, float]:
    """``(alpha, beta)`` of a fit constrained onto persistence ``max_persistence`` (module
    docstring): ``alpha`` kept (capped), ``beta`` the rest, one ulp lower where the float sum
    would otherwise land just above the cap."""
    alpha = min(alpha, max_persistence)
    beta = max_persistence - alpha
    if alpha + beta > max_persistence:
        beta = math.nextafter(beta, 0.0)
    return alpha, beta


def feasible_start(params: np.ndarray) -> np.ndarray:
    """``[mu, omega, alpha, beta, nu]`` moved inside the region arch accepts as starting values:
    ``alpha + beta`` scaled down to at most 0.99, ``omega`` positive, ``nu`` above 2."""
    mu, omega, alpha, beta, nu = (float(v) for v in params)
    alpha, beta = max(alpha, 0.0), max(beta, 0.0)
    k = min(1.0, 0.99 / (alpha + beta)) if alpha + beta > 0 else 1.0
    return np.array([mu, max(omega, 1e-6), alpha * k, beta * k, max(nu, 2.1)])


def fit_garch(returns: np.ndarray, *, scale: float = 100.0,
              max_persistence: float = MAX_PERSISTENCE) -> GarchParams:
    """Fit GARCH(1,1) with Student-t innovations and a constant mean by maximum likelihood.

    Args:
        returns: 1-D per-bar log returns in **decimal** units (NaNs are dropped); at least ~100
            observations for a meaningful fit.
        scale: multiplier applied before fitting; 100 (default) gives the percent units that the
            returned parameters are expressed in.
        max_persistence: the largest ``alpha + beta`` returned; a fit above it is constrained by
            variance targeting (module docstring) and marked ``constrained``.

    Returns:
        :class:`GarchParams` in percent units, with ``backcast`` set to arch's backcast on this
        sample so that :class:`GarchFilter` reproduces ``arch``'s in-sample recursion (for a
        constrained fit: arch's recursion with the constrained parameters fixed).

    Raises:
        ValueError: too few observations, or the optimiser did not converge.
    """
    from arch import arch_model  # lazy: the estimator is a training-time dependency

    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)] * scale
    if r.shape[0] < 100:
        raise ValueError(f"fit_garch needs >= 100 finite returns, got {r.shape[0]}")
    model = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    res = model.fit(disp="off", show_warning=False)
    if res.convergence_flag != 0:
        # SLSQP can stop outside the stationary region (flag 8: its line search found no
        # descent) where the likelihood is near-integrated; once more, from that point pulled
        # inside it (seen on BTCUSDT's first 4,579 returns, and more windows on one thread)
        res = model.fit(disp="off", show_warning=False,
                        starting_values=feasible_start(np.asarray(res.params, dtype=np.float64)))
    if res.convergence_flag != 0:
        raise ValueError(f"GARCH fit did not converge (flag {res.convergence_flag})")
    if not 0.0 < max_persistence < 1.0:
        raise ValueError(f"max_persistence must be in (0, 1), got {max_persistence}")
    p = res.params
    mu, omega, alpha, beta = (float(p["mu"]), float(p["omega"]), float(p["alpha[1]"]),
                              float(p["beta[1]"]))
    constrained = alpha + beta > max_persistence
    if constrained:
        alpha, beta = constrained_shape(alpha, max_persistence)
        omega = float(np.var(r - mu)) * (1.0 - max_persistence)
    # arch's forecast() backcasts from the residuals at the *fitted* mu (its in-fit recursion uses
    # y - mean(y) instead; the two paths converge at rate beta^t). Mirror forecast(), the number
    # the live filter must reproduce.
    return GarchParams(mu=mu, omega=omega, alpha=alpha, beta=beta, nu=float(p["nu"]),
                       backcast=arch_backcast(r - mu), constrained=constrained)


class GarchFilter:
    """One-step GARCH(1,1) variance recursion; O(1) state, no refit.

    ``update(r_t)`` takes the bar-t return (percent) and returns ``sigma_{t+1|t}`` (percent), the
    volatility forecast for the next bar, known at bar t's close.

    Args:
        params: fitted :class:`GarchParams`.
        sigma2: the conditional variance of the *next* observation (percent²) to resume from a
            checkpoint (:attr:`variance`); default ``omega + (alpha + beta) * b`` where ``b`` is
            ``params.backcast`` or the unconditional variance.
    """

    __slots__ = ("_alpha", "_beta", "_mu", "_omega", "_sigma2")

    def __init__(self, params: GarchParams, sigma2: float | None = None) -> None:
        self._omega, self._alpha, self._beta, self._mu = params.omega, params.alpha, params.beta, params.mu
        if sigma2 is None:
            b = params.backcast if params.backcast is not None else params.unconditional_variance
            sigma2 = params.omega + (params.alpha + params.beta) * b
        self._sigma2 = float(sigma2)

    @property
    def variance(self) -> float:
        """Current conditional variance of the next observation, percent²."""
        return self._sigma2

    def update(self, r_pct: float) -> float:
        """Feed one return (percent); return the next bar's sigma forecast (percent)."""
        eps = r_pct - self._mu
        self._sigma2 = self._omega + self._alpha * eps * eps + self._beta * self._sigma2
        return math.sqrt(self._sigma2)

    def run(self, r_pct: np.ndarray) -> np.ndarray:
        """Apply :meth:`update` over an array; element t is ``sigma_{t+1|t}`` in percent."""
        return np.array([self.update(float(x)) for x in np.asarray(r_pct, dtype=np.float64)])
