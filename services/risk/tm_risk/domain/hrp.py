"""Hierarchical risk parity (López de Prado, 2016) on 4h log returns → per-instrument risk budgets.

1. Covariance Σ and correlation ρ of the returns (rows = bars, columns = instruments).
2. Distance d_ij = sqrt((1 − ρ_ij) / 2); the clustering distance is the Euclidean distance between
   columns of d; single-linkage clustering.
3. Quasi-diagonalisation: the leaf order of the dendrogram.
4. Recursive bisection: split each cluster of that order in two halves; with V₁, V₂ the variances of
   the halves' inverse-variance portfolios, the first half gets α = 1 − V₁/(V₁ + V₂) of the
   cluster's weight and the second 1 − α.

Weights are ≥ 0 and sum to 1. With fewer than ``min_obs`` returns (or a single instrument) the
budgets are equal (1/N). Rule using them (see :mod:`~tm_risk.domain.limits`): an instrument's
|target fraction| ≤ budget × gross leverage cap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EPS_VAR = 1e-18


def log_returns(closes: np.ndarray) -> np.ndarray:
    """Log returns (T, N) of aligned closes (T + 1, N); prices must be > 0."""
    c = np.asarray(closes, dtype=float)
    if c.ndim != 2 or c.shape[0] < 2:
        return np.empty((0, c.shape[1] if c.ndim == 2 else 0))
    return np.diff(np.log(c), axis=0)


def _cluster_var(cov: np.ndarray, idx: Sequence[int]) -> float:
    """Variance of the inverse-variance portfolio of the instruments ``idx``."""
    c = cov[np.ix_(idx, idx)]
    ivp = 1.0 / np.maximum(np.diag(c), _EPS_VAR)
    ivp /= ivp.sum()
    return float(ivp @ c @ ivp)


def quasi_diag_order(returns: np.ndarray, cov: np.ndarray | None = None) -> list[int]:
    """Leaf order of the single-linkage dendrogram of the correlation distance (step 2-3).
    ``cov``: the returns' sample covariance, if already computed."""
    n = returns.shape[1]
    if n < 3:
        return list(range(n))
    cov = np.cov(returns, rowvar=False) if cov is None else cov
    std = np.sqrt(np.maximum(np.diag(cov), _EPS_VAR))
    corr = np.clip(np.nan_to_num(cov / np.outer(std, std)), -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    dist = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, None))
    gap = dist[:, :, None] - dist[:, None, :]
    return single_linkage_order(np.sqrt((gap ** 2).sum(axis=0)))


def single_linkage_order(d: np.ndarray) -> list[int]:
    """Leaf order of single-linkage clustering of the symmetric distance matrix ``d`` (N, N), as
    ``scipy.cluster.hierarchy.leaves_list(linkage(squareform(d), "single"))`` gives it: repeatedly
    merge the two closest clusters (distance = closest members) into a new cluster numbered
    N, N + 1, …; a merged cluster lists the leaves of its lower-numbered child first. Written out
    (O(N³), N is the handful of instruments) to keep scipy out of the service's start-up."""
    n = d.shape[0]
    leaves: dict[int, list[int]] = {i: [i] for i in range(n)}
    between: dict[tuple[int, int], float] = {(i, j): float(d[i, j]) for i in range(n)
                                             for j in range(i + 1, n)}
    active, new = list(range(n)), n
    while len(active) > 1:
        a, b = min(between, key=lambda k: (between[k], k))
        active = [c for c in active if c not in (a, b)]
        for c in active:
            dist_c = min(between[(min(a, c), max(a, c))], between[(min(b, c), max(b, c))])
            between[(c, new)] = dist_c
        between = {k: v for k, v in between.items() if a not in k and b not in k}
        leaves[new] = leaves[a] + leaves[b]
        active.append(new)
        new += 1
    return leaves[active[0]]


def hrp_weights(returns: np.ndarray, cov: np.ndarray | None = None) -> np.ndarray:
    """HRP weights (N,) for returns (T, N): non-negative, summing to 1 (steps 1-4). ``cov``: the
    returns' sample covariance, if already computed."""
    r = np.asarray(returns, dtype=float)
    n = r.shape[1]
    if n == 0:
        return np.empty(0)
    if n == 1 or r.shape[0] < 2 or not np.isfinite(r).all():
        return np.full(n, 1.0 / n)
    cov = np.atleast_2d(np.cov(r, rowvar=False)) if cov is None else cov
    w = np.ones(n)
    clusters = [quasi_diag_order(r, cov)]
    while clusters:
        nxt = []
        for c in clusters:
            if len(c) < 2:
                continue
            half = len(c) // 2
            a, b = c[:half], c[half:]
            va, vb = _cluster_var(cov, a), _cluster_var(cov, b)
            alpha = 0.5 if va + vb <= 0 else 1.0 - va / (va + vb)
            w[a] *= alpha
            w[b] *= 1.0 - alpha
            nxt += [a, b]
        clusters = nxt
    w = np.clip(w, 0.0, None)
    s = w.sum()
    return w / s if s > 0 and np.isfinite(s) else np.full(n, 1.0 / n)


def risk_budgets(symbols: Sequence[str], returns: np.ndarray | None,
                 min_obs: int, cov: np.ndarray | None = None) -> dict[str, float]:
    """Budget per symbol (columns of ``returns`` in ``symbols`` order): HRP weights once at least
    ``min_obs`` aligned returns exist, else equal budgets 1/N."""
    n = len(symbols)
    if n == 0:
        return {}
    if returns is None or returns.shape[0] < min_obs or returns.shape[1] != n:
        return {s: 1.0 / n for s in symbols}
    return dict(zip(symbols, (float(x) for x in hrp_weights(returns, cov))))
