"""Policies over held-back OOS rows, through the same environment step as training.

Every policy is evaluated at **full** costs and funding, without the drawdown penalty in the
score: the score is the annualised Sharpe ratio of the equal-weight portfolio of the instruments'
paper books (per 4h bar, the mean over the instruments that have that bar of their net return
``P&L - costs``; ``sqrt(6 * 365)`` bars a year). A policy that never trades scores 0.

Policies (``policy(obs, d, t, kelly_t) -> action in [-1, 1]``):

- ``kelly``: pure Kelly every bar (the baseline the RL policy must beat);
- ``rl``: the actor's deterministic action;
- ``cascade_kelly`` / ``cascade_rl``: the live cascade (breaker CLOSED) without / with the policy,
  for information.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from tm_quant.features import BARS_PER_YEAR
from tm_quant.sizing.cascade import CascadeInput, CascadeThresholds, decide

from tm_trainer.rl.env import EnvConfig, SizingEnv
from tm_trainer.rl.oos import OOSData, WalkForwardConfig

Policy = Callable[[np.ndarray, OOSData, int, float], float]
Actor = Callable[[np.ndarray], float]


def kelly_policy(max_fraction: float) -> Policy:
    return lambda obs, d, t, k: k / max_fraction


def actor_policy(actor: Actor) -> Policy:
    return lambda obs, d, t, k: float(actor(obs))


def cascade_policy(max_fraction: float, actor: Actor | None,
                   th: CascadeThresholds | None = None) -> Policy:
    def pol(obs: np.ndarray, d: OOSData, t: int, k: float) -> float:
        ic = float(d.live_ic[t])
        rl = None if actor is None else float(actor(obs)) * max_fraction
        # the OOS live IC is over the last ic_window matured predictions, as live (fewer only
        # within an instrument's first ic_window matured predictions)
        n = 0 if math.isnan(ic) else WalkForwardConfig.ic_window
        dec = decide(CascadeInput("CLOSED", float(d.confidence[t]),
                                  None if math.isnan(ic) else ic, k, rl, n), th)
        return dec.target_fraction / max_fraction
    return pol


def run(data: Sequence[OOSData], cfg: EnvConfig, policy: Policy) -> list[dict[str, np.ndarray]]:
    """Each instrument from its first row to its last, one fresh paper book each.

    Returns per instrument ``bar_time_ms``, ``net`` (P&L - costs), ``position``."""
    full = replace(cfg, cost_scale=1.0, episode_bars=10**9)
    env = SizingEnv(data, full)
    out = []
    for i, d in enumerate(data):
        obs, _ = env.reset(options={"instrument": i, "row": 0})
        times, net, pos = [], [], []
        done = len(d) < 2
        while not done:
            t = env.row
            a = policy(obs, d, t, float(env.kelly[i][t]))
            obs, _, _, done, info = env.step(np.array([a], dtype=np.float32))
            times.append(info["bar_time_ms"])
            net.append(info["net_return"])
            pos.append(info["position"])
        out.append({"bar_time_ms": np.array(times, dtype=np.int64), "net": np.array(net),
                    "position": np.array(pos)})
    return out


def portfolio_returns(runs: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """Equal-weight mean of the instruments' net returns per bar time."""
    by_time: dict[int, list[float]] = {}
    for r in runs:
        for t, x in zip(r["bar_time_ms"].tolist(), r["net"].tolist(), strict=True):
            by_time.setdefault(t, []).append(x)
    return np.array([float(np.mean(by_time[t])) for t in sorted(by_time)])


def sharpe(returns: np.ndarray) -> float:
    """Annualised Sharpe of per-bar returns (0 when flat or fewer than 2 bars)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    if not sd > 1e-12:
        return 0.0
    return float(r.mean() / sd * math.sqrt(BARS_PER_YEAR))


def summary(runs: Sequence[dict[str, np.ndarray]], names: Sequence[str]) -> dict[str, float]:
    """Sharpe, total return, max drawdown, mean |position| and turnover per bar."""
    port = portfolio_returns(runs)
    eq = np.cumprod(1.0 + port) if port.size else np.ones(1)
    dd = float(np.max(1.0 - eq / np.maximum.accumulate(eq))) if port.size else 0.0
    pos = np.concatenate([r["position"] for r in runs]) if runs else np.zeros(1)
    turn = np.concatenate([np.abs(np.diff(r["position"], prepend=0.0)) for r in runs]) \
        if runs else np.zeros(1)
    out = {"sharpe": sharpe(port), "total_return": float(eq[-1] - 1.0), "max_drawdown": dd,
           "mean_abs_position": float(np.mean(np.abs(pos))), "turnover": float(np.mean(turn)),
           "bars": float(port.size)}
    for n, r in zip(names, runs, strict=True):
        out[f"sharpe_{n}"] = sharpe(r["net"])
    return out


def compare(data: Sequence[OOSData], cfg: EnvConfig, actor: Actor | None) -> dict[str, dict]:
    """Summaries of ``kelly`` (and ``rl``, ``cascade_rl`` with an actor) and ``cascade_kelly``."""
    names = [d.instrument for d in data]
    res = {"kelly": summary(run(data, cfg, kelly_policy(cfg.max_fraction)), names),
           "cascade_kelly": summary(run(data, cfg, cascade_policy(cfg.max_fraction, None)), names)}
    if actor is not None:
        res["rl"] = summary(run(data, cfg, actor_policy(actor)), names)
        res["cascade_rl"] = summary(run(data, cfg, cascade_policy(cfg.max_fraction, actor)), names)
    return res
