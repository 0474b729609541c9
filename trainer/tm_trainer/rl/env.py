"""Gymnasium environment for RL position sizing over out-of-sample signals.

One step = one 4h bar of one instrument. At the close of bar t the agent sees the observation
(:func:`tm_quant.sizing.observation.build_observation`, the very function the live sizer uses) and
chooses ``a ∈ [-1, 1]``; the target position is ``a * max_fraction`` of equity, held over bar
t+1. With ``Δ = |position_t - position_{t-1}|``:

    reward_t = position_t * next_ret_t                        (P&L of bar t+1, simple return)
             - (fee_rate + slippage_rate) * cost_scale * Δ     (trading costs)
             - position_t * funding_t * cost_scale             (funding settled during bar t+1;
                                                                longs pay a positive rate)
             - dd_penalty * max(0, drawdown_after - drawdown_before)

all in fractions of the paper book's equity (:class:`PaperBook`), times ``reward_scale`` (SAC
learns poorly from rewards of ~1e-3). ``drawdown_before`` is the drawdown in the observation,
``drawdown_after`` the one after the costs and the bar's P&L.

Only rows ``<= t`` of the OOS data enter the observation at t (the reward's ``next_ret_t`` and
``funding_t`` are used after the action, never observed before it); tested by perturbing every
later row. Episodes start at a row drawn (seeded) from ``starts`` (the curriculum picks them) and
run ``episode_bars`` bars or to the end of the instrument's rows (truncated, not terminated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tm_quant.sizing.kelly import REGIME_LABELS, KellyParams, kelly_fraction, win_loss_ratio
from tm_quant.sizing.observation import OBS_CLIP, OBS_DIM, PaperBook, build_observation

from tm_trainer.rl.oos import OOSData


@dataclass(frozen=True)
class EnvConfig:
    """Costs are fractions of traded notional (Bybit taker 0.055 %, slippage 2 bp by default).
    ``kelly.max_fraction`` (default 0.25) is also the position at action 1 (:attr:`max_fraction`):
    one cap for Kelly and the policy, as in the sizer."""

    fee_rate: float = 0.00055
    slippage_rate: float = 0.0002
    cost_scale: float = 1.0
    dd_penalty: float = 1.0
    reward_scale: float = 100.0
    episode_bars: int = 256
    kelly: KellyParams = field(default_factory=KellyParams)

    @property
    def max_fraction(self) -> float:
        """|position| at action 1 and the Kelly cap, fraction of equity."""
        return self.kelly.max_fraction

    @property
    def cost_rate(self) -> float:
        return (self.fee_rate + self.slippage_rate) * self.cost_scale

    def to_dict(self) -> dict:
        d = {"max_fraction": self.max_fraction, **asdict(self)}
        d["kelly"]["regime_fractions"] = dict(self.kelly.regime_fractions)
        return d


def kelly_series(d: OOSData, kp: KellyParams) -> np.ndarray:
    """Kelly target per row, with the win/loss ratio of outcomes ``direction_s * next_ret_s`` for
    ``s < t`` (known at t), the regime label = the most probable state, capped as in the sizer."""
    n = len(d)
    out = np.zeros(n)
    outcomes = d.direction * d.next_ret
    labels = np.argmax(d.regime_probs, axis=1)
    for t in range(n):
        b = win_loss_ratio(outcomes[max(0, t - kp.window):t], kp)
        out[t] = kelly_fraction(float(d.probability[t]), int(d.direction[t]), b,
                                kp.regime_fraction(REGIME_LABELS[labels[t]]), kp.max_fraction)
    return out


def observation(d: OOSData, kelly: np.ndarray, t: int, book: PaperBook,
                max_fraction: float) -> np.ndarray:
    """The observation of row t given the paper book (float32 for the agent)."""
    ic = float(d.live_ic[t])
    return build_observation(
        probability=float(d.probability[t]), confidence=float(d.confidence[t]),
        live_ic=None if np.isnan(ic) else ic, regime_probs=d.regime_probs[t].tolist(),
        volatility=float(d.volatility[t]), position=book.position,
        returns=d.returns3[t].tolist(), drawdown=book.drawdown, kelly=float(kelly[t]),
        max_fraction=max_fraction).astype(np.float32)


class SizingEnv(gym.Env):
    """Position sizing over ``data`` (one :class:`OOSData` per instrument).

    Args:
        data: OOS rows per instrument.
        cfg: costs, scales, episode length.
        starts: allowed episode starts as ``(instrument index, row)`` pairs (default: every row
            that leaves at least 2 steps); duplicates weight a start.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, data: Sequence[OOSData], cfg: EnvConfig | None = None,
                 starts: np.ndarray | None = None) -> None:
        super().__init__()
        self.data = list(data)
        self.cfg = cfg or EnvConfig()
        self.kelly = [kelly_series(d, self.cfg.kelly) for d in self.data]
        if starts is None:
            starts = np.array([(i, t) for i, d in enumerate(self.data) for t in range(len(d) - 2)])
        if len(starts) == 0:
            raise ValueError("no episode starts")
        self.starts = np.asarray(starts, dtype=np.int64)
        self.observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._i = self._t = self._steps = 0
        self.book = PaperBook()

    def _obs(self) -> np.ndarray:
        return observation(self.data[self._i], self.kelly[self._i], self._t, self.book,
                           self.cfg.max_fraction)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        opts = options or {}
        if "instrument" in opts:
            self._i, self._t = int(opts["instrument"]), int(opts.get("row", 0))
        else:
            self._i, self._t = (int(x) for x in self.starts[self.np_random.integers(len(self.starts))])
        self._steps = 0
        self.book = PaperBook()
        return self._obs(), {"instrument": self.data[self._i].instrument, "row": self._t}

    def step(self, action):
        d, t, cfg = self.data[self._i], self._t, self.cfg
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        pos = a * cfg.max_fraction
        dd0 = self.book.drawdown
        cost = self.book.rebalance(pos, cfg.cost_rate)
        funding = float(d.funding_next[t]) * cfg.cost_scale
        pnl = self.book.hold(float(d.next_ret[t]), funding)
        dd_inc = max(0.0, self.book.drawdown - dd0)
        raw = pnl - cost - cfg.dd_penalty * dd_inc
        info = {"pnl": pnl, "cost": cost, "dd_increase": dd_inc, "net_return": pnl - cost,
                "position": pos, "bar_time_ms": int(d.bar_time_ms[t]), "raw_reward": raw}
        self._t += 1
        self._steps += 1
        truncated = self._steps >= cfg.episode_bars or self._t >= len(d) - 1
        return self._obs(), raw * cfg.reward_scale, False, truncated, info

    @property
    def row(self) -> int:
        return self._t

    @property
    def instrument_index(self) -> int:
        return self._i
