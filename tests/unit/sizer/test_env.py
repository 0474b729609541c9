"""The RL environment: reward on a hand-computed example; no observation sees data from after
its bar (environment and OOS generator)."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

pytest.importorskip("gymnasium", reason="gymnasium not installed (trainer extra)")

from tm_quant.sizing.kelly import KellyParams
from tm_trainer.rl.env import EnvConfig, SizingEnv
from tm_trainer.rl.oos import (
    OOSData,
    WalkForwardConfig,
    oos_from_predictions,
    walk_forward_probabilities,
)


def make_data(n: int, seed: int = 0, **over) -> OOSData:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.8, n)
    rp = rng.dirichlet(np.ones(4), n)
    cols = {"bar_time_ms": np.arange(n, dtype=np.int64) * 14_400_000, "probability": p,
            "confidence": np.abs(2 * p - 1), "direction": np.sign(p - 0.5).astype(np.int64),
            "live_ic": rng.uniform(-0.2, 0.2, n), "regime_probs": rp,
            "volatility": rng.uniform(0.005, 0.03, n), "returns3": rng.normal(0, 0.01, (n, 3)),
            "next_ret": rng.normal(0, 0.01, n), "funding_next": rng.normal(0, 1e-4, n),
            "window": np.zeros(n, dtype=np.int64)}
    cols.update(over)
    return OOSData("BTCUSDT", **cols)


def test_reward_hand_computed():
    d = make_data(4, next_ret=np.array([0.02, 0.03, -0.01, 0.0]),
                  funding_next=np.array([0.0001, 0.0002, 0.0, 0.0]))
    cfg = EnvConfig(fee_rate=0.001, slippage_rate=0.0005, dd_penalty=2.0,
                    reward_scale=1.0, kelly=KellyParams(max_fraction=0.5))
    env = SizingEnv([d], cfg)
    env.reset(options={"instrument": 0, "row": 0})
    # Step 1: long 0.5 (Δ 0.5): cost 0.5 * 0.0015 = 0.00075; P&L 0.5 * 0.02 - 0.5 * 0.0001
    # = 0.00995. Equity 0.99925 * 1.00995 is a new peak: no drawdown increase.
    _, r1, term, trunc, info = env.step(np.array([1.0]))
    assert r1 == pytest.approx(0.00995 - 0.00075, abs=1e-12)
    assert not term and not trunc and info["position"] == 0.5
    # Step 2: short 0.5 (Δ 1.0): cost 0.0015; P&L -0.5 * 0.03 - (-0.5) * 0.0002 = -0.0149;
    # drawdown from 0 to 1 - (1 - 0.0015)(1 - 0.0149) = 0.01637765, penalised twice.
    _, r2, _, _, info = env.step(np.array([-1.0]))
    dd = 1 - (1 - 0.0015) * (1 - 0.0149)
    assert info["dd_increase"] == pytest.approx(dd, abs=1e-12)
    assert r2 == pytest.approx(-0.0149 - 0.0015 - 2 * dd, abs=1e-12)
    # reward_scale multiplies; an action outside [-1, 1] is clipped
    env2 = SizingEnv([d], replace(cfg, reward_scale=100.0))
    env2.reset(options={"instrument": 0, "row": 0})
    assert env2.step(np.array([3.0]))[1] == pytest.approx(100 * r1)


def _observations(d: OOSData, actions: np.ndarray, upto: int) -> list[np.ndarray]:
    env = SizingEnv([d], EnvConfig(episode_bars=10_000))
    obs, _ = env.reset(options={"instrument": 0, "row": 0})
    out = [obs]
    for t in range(upto):
        obs, *_ = env.step(actions[t:t + 1])
        out.append(obs)
    return out


@pytest.mark.parametrize("cut", [0, 1, 7, 30, 58])
def test_env_observation_uses_nothing_after_its_bar(cut):
    n = 60
    d = make_data(n)
    actions = np.random.default_rng(1).uniform(-1, 1, n)
    base = _observations(d, actions, cut)
    rng = np.random.default_rng(99)
    changed = {}
    for f in fields(OOSData):
        if f.name in ("instrument", "bar_time_ms", "window"):
            continue
        a = getattr(d, f.name).copy()
        # rows after the cut change; so do the cut row's reward-only columns (next bar)
        first = cut if f.name in ("next_ret", "funding_next") else cut + 1
        noise = rng.uniform(0.01, 0.9, a[first:].shape)
        a[first:] = noise.astype(a.dtype) if a.dtype.kind == "f" else np.sign(noise - 0.5)
        changed[f.name] = a
    future = _observations(OOSData(d.instrument, d.bar_time_ms, window=d.window, **changed),
                           actions, cut)
    for t in range(cut + 1):
        np.testing.assert_array_equal(base[t], future[t])
    assert not np.array_equal(_observations(OOSData(d.instrument, d.bar_time_ms, window=d.window,
                                                    **changed), actions, cut + 1)[-1],
                              _observations(d, actions, cut + 1)[-1]) or cut + 1 >= n


def _bars(n: int, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sigma = np.where((np.arange(n) // 60) % 3 == 0, 0.025, 0.006)    # volatility regimes
    c = 100 * np.exp(np.cumsum(rng.standard_t(5, n) * sigma))
    o = np.concatenate([[100.0], c[:-1]])
    return {"timestamp": np.arange(n, dtype=np.int64) * 14_400_000 + 1_600_000_000_000,
            "open": o, "high": np.maximum(o, c) * 1.002, "low": np.minimum(o, c) * 0.998,
            "close": c, "volume": rng.uniform(1, 2, n)}


CFG = WalkForwardConfig(horizon_bars=6, first_test_bar=500, test_bars=100, purge_bars=50,
                        n_estimators=10, max_depth=2, ic_window=30, ic_min_pairs=10)
KNOWN = ("probability", "confidence", "direction", "live_ic", "regime_probs", "volatility",
         "returns3", "window", "bar_time_ms")


def test_walk_forward_and_oos_rows_do_not_depend_on_later_bars():
    from tm_quant.features import compute_batch

    n, cut = 900, 760
    bars = _bars(n)
    short = {k: v[:cut] for k, v in bars.items()}
    X_full, _ = compute_batch(bars)
    X_cut, _ = compute_batch(short)
    p_full, w_full = walk_forward_probabilities(X_full, bars["close"], CFG)
    p_cut, w_cut = walk_forward_probabilities(X_cut, short["close"], CFG)
    np.testing.assert_array_equal(p_full[:cut], p_cut)
    np.testing.assert_array_equal(w_full[:cut], w_cut)
    assert np.isnan(p_full[:CFG.first_test_bar]).all() and np.isfinite(p_full[CFG.first_test_bar:]).all()

    ft = bars["timestamp"][::2] + 3_600_000
    fr = np.random.default_rng(2).normal(0, 1e-4, ft.shape[0])
    full = oos_from_predictions("X", bars["timestamp"], bars["close"], p_full, w_full, CFG,
                                funding_time=ft, funding_rate=fr)
    part = oos_from_predictions("X", short["timestamp"], short["close"], p_cut, w_cut, CFG,
                                funding_time=ft[ft <= short["timestamp"][-1] + 14_400_000],
                                funding_rate=fr[ft <= short["timestamp"][-1] + 14_400_000])
    k = len(part)
    assert k > 200 and full.bar_time_ms[:k].tolist() == part.bar_time_ms.tolist()
    for name in KNOWN:
        np.testing.assert_allclose(getattr(full, name)[:k], getattr(part, name), rtol=0,
                                   atol=1e-12, err_msg=name)
    np.testing.assert_allclose(full.next_ret[:k], part.next_ret, atol=1e-15)
    # the live IC only uses matured labels: its first value needs ic_min_pairs + horizon bars
    first_ic = int(np.argmax(np.isfinite(full.live_ic)))
    assert first_ic >= CFG.ic_min_pairs + CFG.horizon_bars - 1


def test_purge_shorter_than_horizon_is_refused():
    with pytest.raises(ValueError, match="purge"):
        WalkForwardConfig(horizon_bars=6, purge_bars=5)
