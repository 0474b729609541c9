"""4-state Gaussian HMM regimes: fitted offline (hmmlearn), filtered online (pure numpy).

Observations are 2-D, ``x_t = [log return, log volatility]`` of bar t (see
:func:`regime_observation`; the volatility is typically the GARCH sigma from :mod:`tm_quant.garch`,
any per-bar scale works as long as fit and filter use the same one).

State labelling rule (applied once after fitting; the stored states are then *ordered*
``STATE_LABELS = (Bull, Neutral, Bear, Crisis)``):

1. **Crisis** = the state with the highest mean volatility (mean of column 1);
2. of the remaining three, **Bull** = the highest mean return (column 0), **Bear** = the lowest,
   **Neutral** = the middle one. Ties break by hmmlearn's state index (stable sort).

The model is four plain arrays (``startprob``, ``transmat``, ``means``, ``covars``), saved with
:meth:`RegimeModel.to_arrays` as ``.npz`` or JSON and never pickled. :class:`RegimeFilter` advances
the forward filter one bar at a time, ``alpha_t ∝ (alpha_{t-1} @ transmat) * N(x_t | means, covars)``,
without refitting; its output equals hmmlearn's ``predict_proba(X[:t+1])[-1]`` (tested).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tm_quant.checks import check_range

STATE_LABELS: tuple[str, ...] = ("Bull", "Neutral", "Bear", "Crisis")
N_STATES = 4
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True, slots=True)
class KellyFractions:
    """Fraction of the full Kelly bet per regime, each in [0, 1]; defaults 0.67/0.50/0.25/0.17."""

    bull: float = 0.67
    neutral: float = 0.50
    bear: float = 0.25
    crisis: float = 0.17

    def __post_init__(self) -> None:
        for name in ("bull", "neutral", "bear", "crisis"):
            check_range(f"Kelly fraction {name}", getattr(self, name), 0.0, 1.0)

    def as_array(self) -> np.ndarray:
        """Fractions in ``STATE_LABELS`` order."""
        return np.array([self.bull, self.neutral, self.bear, self.crisis], dtype=np.float64)

    def for_label(self, label: str) -> float:
        return float(self.as_array()[STATE_LABELS.index(label)])


def regime_observation(log_return: float | np.ndarray, volatility: float | np.ndarray) -> np.ndarray:
    """``[log return, ln(volatility)]`` rows: shape (2,) for scalars, (n, 2) for arrays.

    ``volatility`` must be > 0 (per-bar sigma, decimal or percent: the same as at fit time).
    """
    r = np.asarray(log_return, dtype=np.float64)
    v = np.asarray(volatility, dtype=np.float64)
    return np.stack([r, np.log(v)], axis=-1)


def label_states(means: np.ndarray) -> np.ndarray:
    """Permutation ``perm`` with ``perm[k]`` = the fitted state that gets ``STATE_LABELS[k]``.

    ``means``: (4, 2) state means, column 0 = log return, column 1 = log volatility.
    """
    means = np.asarray(means, dtype=np.float64)
    if means.shape[0] != N_STATES:
        raise ValueError(f"expected {N_STATES} states, got {means.shape[0]}")
    crisis = int(np.argmax(means[:, 1]))
    rest = [s for s in range(N_STATES) if s != crisis]
    by_return = sorted(rest, key=lambda s: -means[s, 0])  # stable: ties keep index order
    return np.array([by_return[0], by_return[1], by_return[2], crisis])


@dataclass(frozen=True, eq=False)
class RegimeModel:
    """HMM parameters with states in ``STATE_LABELS`` order.

    Attributes:
        startprob: (4,) initial state distribution.
        transmat: (4, 4) row-stochastic transition matrix (per bar).
        means: (4, d) state means of the observation ``[log return, log vol]`` (d = 2).
        covars: (4, d, d) full covariance matrices (symmetric positive definite).
    """

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    covars: np.ndarray
    labels: tuple[str, ...] = field(default=STATE_LABELS)

    def __post_init__(self) -> None:
        for name in ("startprob", "transmat", "means", "covars"):
            object.__setattr__(self, name, np.array(getattr(self, name), dtype=np.float64))
        k, d = self.means.shape if self.means.ndim == 2 else (0, 0)
        if k != N_STATES or self.startprob.shape != (k,) or self.transmat.shape != (k, k) \
                or self.covars.shape != (k, d, d):
            raise ValueError("RegimeModel needs startprob (4,), transmat (4,4), means (4,d), covars (4,d,d)")
        if tuple(self.labels) != STATE_LABELS:
            raise ValueError(f"states must be ordered {STATE_LABELS}, got {tuple(self.labels)}")
        if not (np.allclose(self.startprob.sum(), 1.0) and np.allclose(self.transmat.sum(axis=1), 1.0)
                and (self.transmat >= 0).all() and (self.startprob >= 0).all()):
            raise ValueError("startprob and transmat rows must be probability vectors")
        np.linalg.cholesky(self.covars)  # raises LinAlgError unless every covariance is PD

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no object arrays: loads with ``allow_pickle=False``).

        For JSON use ``{k: v.tolist() for k, v in model.to_arrays().items()}``.
        """
        return {"startprob": self.startprob.copy(), "transmat": self.transmat.copy(),
                "means": self.means.copy(), "covars": self.covars.copy(),
                "labels": np.array(STATE_LABELS)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> RegimeModel:
        """Inverse of :meth:`to_arrays`; accepts an ``NpzFile`` or a JSON-decoded dict of lists."""
        labels = tuple(str(s) for s in np.asarray(arrays.get("labels", STATE_LABELS)).tolist())
        return cls(startprob=np.asarray(arrays["startprob"]), transmat=np.asarray(arrays["transmat"]),
                   means=np.asarray(arrays["means"]), covars=np.asarray(arrays["covars"]), labels=labels)


def fit_regime_model(X: np.ndarray, seed: int, *, n_iter: int = 200, n_restarts: int = 3,
                     tol: float = 1e-4) -> RegimeModel:
    """Fit a 4-state full-covariance GaussianHMM (hmmlearn, Baum-Welch) and label its states.

    Args:
        X: (n, 2) observations ``[log return, log vol]``, finite, n >= ~500 (7,600 × 2: ~1-3 s per
            restart on 2 cores, depending on how many EM iterations it needs).
        seed: random seed; restart k uses ``seed + k``, so the result is reproducible.
        n_iter: EM iterations per restart (default 200).
        n_restarts: fits from different seeds; the highest log-likelihood wins (default 3).
        tol: EM convergence threshold on the log-likelihood gain.

    Returns:
        :class:`RegimeModel` with states reordered to ``STATE_LABELS`` (rule in the module doc).
    """
    from hmmlearn.hmm import GaussianHMM  # lazy: training-time dependencies
    from threadpoolctl import threadpool_limits

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not np.isfinite(X).all():
        raise ValueError("X must be a finite (n, d) array")
    if X.shape[0] < 10 * N_STATES:
        raise ValueError(f"too few observations to fit {N_STATES} states: {X.shape[0]}")
    best, best_score = None, -np.inf
    # EM here is many tiny (4×2×2) linear-algebra calls: multi-threaded BLAS only adds overhead
    # (measured 3-5x slower on 2 cores), so pin it to one thread for the fit.
    with threadpool_limits(limits=1):
        for k in range(max(1, n_restarts)):
            hmm = GaussianHMM(n_components=N_STATES, covariance_type="full", n_iter=n_iter, tol=tol,
                              random_state=seed + k)
            hmm.fit(X)
            score = hmm.score(X)
            if np.isfinite(score) and score > best_score and _usable(hmm):
                best, best_score = hmm, score
    if best is None:
        raise ValueError("HMM fit failed on every restart (no finite likelihood with finite "
                         "parameters and positive-definite covariances)")
    perm = label_states(best.means_)
    return RegimeModel(startprob=best.startprob_[perm], transmat=best.transmat_[np.ix_(perm, perm)],
                       means=best.means_[perm], covars=np.asarray(best.covars_)[perm])


def _usable(hmm: Any) -> bool:
    """A fitted restart a :class:`RegimeModel` can hold: finite parameters and every covariance
    positive definite. EM can end with a collapsed state (a NaN or singular covariance) while
    the likelihood stays finite; such a restart is passed over, not served."""
    covars = np.asarray(hmm.covars_)
    if not all(np.isfinite(a).all() for a in (hmm.startprob_, hmm.transmat_, hmm.means_, covars)):
        return False
    try:
        np.linalg.cholesky(covars)
    except np.linalg.LinAlgError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RegimeState:
    """Filtered regime of one bar.

    Attributes:
        probs: (4,) filtered probabilities in ``STATE_LABELS`` order, summing to 1.
        label: the most probable state.
        kelly_fraction: the configured fraction of that state.
        kelly_blend: probability-weighted fraction, ``probs @ fractions``.
    """

    probs: np.ndarray
    label: str
    kelly_fraction: float
    kelly_blend: float


class RegimeFilter:
    """One forward-filter step per bar with fixed parameters (no refit, O(1) state).

    Args:
        model: the fitted :class:`RegimeModel`.
        kelly: per-regime Kelly fractions (defaults 0.67/0.50/0.25/0.17).
        alpha: filtered probabilities to resume from (a checkpoint of :attr:`alpha`); None =
            start fresh (the first update uses ``startprob`` as the prior).
    """

    def __init__(self, model: RegimeModel, kelly: KellyFractions | None = None,
                 alpha: np.ndarray | None = None) -> None:
        self._model = model
        self._kelly = (kelly or KellyFractions()).as_array()
        self._means = model.means
        self._prec = np.linalg.inv(model.covars)
        _, logdet = np.linalg.slogdet(model.covars)
        self._lognorm = -0.5 * (model.n_features * _LOG_2PI + logdet)
        self._alpha = None if alpha is None else np.asarray(alpha, dtype=np.float64).copy()

    @property
    def alpha(self) -> np.ndarray | None:
        """Current filtered probabilities (copy), or None before the first update."""
        return None if self._alpha is None else self._alpha.copy()

    def reset(self) -> None:
        self._alpha = None

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """(4,) Gaussian log densities of observation ``x`` under each state."""
        d = np.asarray(x, dtype=np.float64) - self._means
        maha = np.einsum("ki,kij,kj->k", d, self._prec, d)
        logpdf: np.ndarray = self._lognorm - 0.5 * maha
        return logpdf

    def update(self, x: np.ndarray) -> RegimeState:
        """Advance one bar with observation ``x = [log return, log vol]``; return the regime.

        Raises:
            ValueError: ``x`` is not finite or has the wrong length.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self._model.n_features,) or not np.isfinite(x).all():
            raise ValueError(f"observation must be {self._model.n_features} finite numbers, got {x}")
        ll = self.log_likelihood(x)
        # Scale by the best state's density before exp(): same posterior, no underflow on a
        # far-out observation (e.g. a crash bar many sigmas from every state).
        lik = np.exp(ll - ll.max())
        prior = self._model.startprob if self._alpha is None else self._alpha @ self._model.transmat
        a = prior * lik
        s = a.sum()
        # s == 0 only if every likely state is unreachable from the prior: keep the prior.
        self._alpha = a / s if s > 0 and np.isfinite(s) else prior / prior.sum()
        k = int(np.argmax(self._alpha))
        return RegimeState(probs=self._alpha.copy(), label=STATE_LABELS[k],
                           kelly_fraction=float(self._kelly[k]),
                           kelly_blend=float(self._alpha @ self._kelly))
