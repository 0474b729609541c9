"""SAC sizing policy: curriculum training on OOS signals, validation against pure Kelly, gate,
export and registry entry (kind ``rl``).

Data: the OOS rows (:mod:`tm_trainer.rl.oos`), split by walk-forward window: the last
``val_windows`` windows are held back for validation, the earlier ones train the policy.

Curriculum (one SAC model, one replay buffer, two environments in sequence):

1. *calm and cheap*: episodes of ``phase1_episode_bars`` bars starting at calm rows (GARCH
   volatility at most the ``calm_vol_quantile`` of the instrument's training rows, and Crisis
   probability < 0.5), costs and funding scaled by ``phase1_cost_scale``, a softer drawdown penalty;
2. *full*: full costs and funding, every row a possible start, volatile/crisis rows (top quartile
   of volatility or Crisis probability >= 0.5) over-weighted to ``crisis_share`` of the starts.

Settings for minutes on 2 CPU cores: actor/critics ``[64, 64]``, batch 128, one gradient step
every ``train_freq`` = 4 env steps, ``learning_starts`` 2000; seeds fixed everywhere (``random``,
numpy, ``torch.manual_seed``, SB3, the environments) and ``torch.set_num_threads(torch_threads)``.

``torch_threads`` defaults to **1**, measured: 3000 SAC steps ([64, 64], batch 128, 1 gradient step
per 4 env steps) on this 2-core machine shared with other jobs took 11 s CPU / 80 s wall with one
thread and 133 s CPU / 420 s wall with two (the second intra-op thread spin-waits; these matrices
are too small to split). Unloaded, one thread was also as fast (~320 env steps/s either way).

Gate: the policy may size positions only if its validation Sharpe beats pure Kelly's on the same
rows (and exceeds ``min_rl_sharpe``, default 0: beating a losing Kelly by staying flat is no
edge). The registry gets the version either way, with the gate result; only a passed policy is
promoted.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from tm_trainer.rl.env import EnvConfig, SizingEnv
from tm_trainer.rl.evaluate import compare
from tm_trainer.rl.export import actor_arrays, build_bundle
from tm_trainer.rl.oos import OOSData, WalkForwardConfig, data_hash


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 7
    phase1_steps: int = 20_000
    phase2_steps: int = 40_000
    phase1_cost_scale: float = 0.25
    phase1_dd_penalty: float = 0.5
    phase1_episode_bars: int = 128
    calm_vol_quantile: float = 0.5
    crisis_share: float = 0.5
    val_windows: int = 6
    net_arch: tuple[int, ...] = (64, 64)
    batch_size: int = 128
    buffer_size: int = 100_000
    learning_starts: int = 2_000
    train_freq: int = 4
    gradient_steps: int = 1
    learning_rate: float = 3e-4
    gamma: float = 0.95
    torch_threads: int = 1
    min_rl_sharpe: float = 0.0
    env: EnvConfig = field(default_factory=EnvConfig)
    wf: WalkForwardConfig = field(default_factory=WalkForwardConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["env"] = self.env.to_dict()
        d["net_arch"] = list(self.net_arch)
        return d


@dataclass
class TrainResult:
    version: str
    bundle_bytes: bytes
    gate: dict[str, Any]
    validation: dict[str, dict[str, float]]
    timings: dict[str, float]
    data_hash: str
    model: Any = None          # the SB3 SAC (for tests and the export check)
    promoted: Any = None       # ModelPromoted body when promoted
    data: dict[str, Any] = field(default_factory=dict)   # RawInputs.data_info() of the run


def split(data: Sequence[OOSData], val_windows: int) -> tuple[list[OOSData], list[OOSData]]:
    """(train, validation): validation = the last ``val_windows`` walk-forward windows."""
    last = max(int(d.window.max()) for d in data if len(d))
    cut = last - val_windows + 1
    train = [d.rows(d.window < cut) for d in data]
    val = [d.rows(d.window >= cut) for d in data]
    return [d for d in train if len(d) > 2], [d for d in val if len(d) > 2]


def curriculum_starts(data: Sequence[OOSData], phase: int, cfg: TrainConfig) -> np.ndarray:
    """Episode starts ``(instrument, row)`` of a phase (module docstring)."""
    starts: list[tuple[int, int]] = []
    for i, d in enumerate(data):
        n = len(d) - 2
        vol, crisis = d.volatility[:n], d.regime_probs[:n, 3]
        if phase == 1:
            calm = (vol <= np.quantile(vol, cfg.calm_vol_quantile)) & (crisis < 0.5)
            starts += [(i, int(t)) for t in np.flatnonzero(calm)]
            continue
        hot = (vol >= np.quantile(vol, 0.75)) | (crisis >= 0.5)
        c = float(hot.mean())
        k = 1 if c in (0.0, 1.0) else max(1, round(cfg.crisis_share * (1 - c)
                                                   / (c * (1 - cfg.crisis_share))))
        starts += [(i, int(t)) for t in range(n)]
        starts += [(i, int(t)) for t in np.flatnonzero(hot)] * (k - 1)
    return np.array(starts, dtype=np.int64)


def seed_everything(seed: int, threads: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def _vec(env: SizingEnv, seed: int):
    from stable_baselines3.common.vec_env import DummyVecEnv

    v = DummyVecEnv([lambda: env])
    v.seed(seed)
    v.action_space.seed(seed)
    return v


def train_policy(train: Sequence[OOSData], cfg: TrainConfig,
                 log: Callable[[str], None] = lambda s: None) -> tuple[Any, dict[str, float]]:
    """Run the two curriculum phases; returns the SAC model and the seconds per phase."""
    from stable_baselines3 import SAC

    seed_everything(cfg.seed, cfg.torch_threads)
    env1 = SizingEnv(train, replace(cfg.env, cost_scale=cfg.phase1_cost_scale,
                                    dd_penalty=cfg.phase1_dd_penalty,
                                    episode_bars=cfg.phase1_episode_bars),
                     curriculum_starts(train, 1, cfg))
    env2 = SizingEnv(train, cfg.env, curriculum_starts(train, 2, cfg))
    model = SAC("MlpPolicy", _vec(env1, cfg.seed), seed=cfg.seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": list(cfg.net_arch)}, batch_size=cfg.batch_size,
                buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts,
                train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps,
                learning_rate=cfg.learning_rate, gamma=cfg.gamma)
    t0 = time.perf_counter()
    if cfg.phase1_steps > 0:
        model.learn(cfg.phase1_steps)
    t1 = time.perf_counter()
    log(f"phase 1 (calm, costs x{cfg.phase1_cost_scale}): {cfg.phase1_steps} steps, {t1 - t0:.1f} s")
    model.set_env(_vec(env2, cfg.seed + 1))
    if cfg.phase2_steps > 0:
        model.learn(cfg.phase2_steps, reset_num_timesteps=cfg.phase1_steps == 0)
    t2 = time.perf_counter()
    log(f"phase 2 (full costs, crisis-weighted): {cfg.phase2_steps} steps, {t2 - t1:.1f} s")
    return model, {"phase1_s": t1 - t0, "phase2_s": t2 - t1, "train_s": t2 - t0}


def gate_result(validation: dict[str, dict[str, float]], min_rl_sharpe: float) -> dict[str, Any]:
    rl, kelly = validation["rl"]["sharpe"], validation["kelly"]["sharpe"]
    return {"passed": bool(rl > kelly and rl > min_rl_sharpe), "rl_sharpe": rl,
            "kelly_sharpe": kelly, "min_rl_sharpe": min_rl_sharpe}


def train_and_validate(data: Sequence[OOSData], cfg: TrainConfig,
                       log: Callable[[str], None] = lambda s: None, *,
                       data_info: dict[str, Any] | None = None) -> TrainResult:
    """Split, train, validate against Kelly, export: everything but the registry.

    ``data_info``: where the OOS signals' history came from
    (:meth:`~tm_trainer.data.RawInputs.data_info`: source, data hash, rows), kept in the bundle
    and the registry entry."""
    from tm_quant.sizing.actor import NumpyActor

    train, val = split(data, cfg.val_windows)
    if not train or not val:
        raise ValueError("not enough OOS windows for a training and a validation part")
    log(f"train rows {sum(map(len, train))}, validation rows {sum(map(len, val))} "
        f"({cfg.val_windows} windows)")
    model, timings = train_policy(train, cfg, log)
    arrays = actor_arrays(model)
    actor = NumpyActor(arrays)
    t = time.perf_counter()
    validation = compare(val, cfg.env, actor.act)
    timings["validate_s"] = time.perf_counter() - t
    gate = gate_result(validation, cfg.min_rl_sharpe)
    log(f"validation Sharpe: RL {gate['rl_sharpe']:.3f} vs pure Kelly {gate['kelly_sharpe']:.3f} "
        f"-> gate {'PASSED' if gate['passed'] else 'FAILED'}")
    dh = data_hash(data)
    extra = {"training": cfg.to_dict(), "data_hash": dh,
             "validation": validation, "timings_s": {k: round(v, 3) for k, v in timings.items()},
             "train_bars": {"first_ms": min(int(d.bar_time_ms[0]) for d in train),
                            "last_ms": max(int(d.bar_time_ms[-1]) for d in train)},
             "validation_bars": {"first_ms": min(int(d.bar_time_ms[0]) for d in val),
                                 "last_ms": max(int(d.bar_time_ms[-1]) for d in val)}}
    if data_info:
        extra["data"] = data_info
    bundle = build_bundle(arrays, max_fraction=cfg.env.max_fraction, gate=gate,
                          extra=json.loads(json.dumps(extra)))
    return TrainResult(bundle.version, bundle.to_bytes(), gate, validation, timings, dh, model,
                       data=dict(data_info or {}))


def registry_metrics(res: TrainResult) -> dict[str, float]:
    v = res.validation
    m = {"rl_sharpe": res.gate["rl_sharpe"], "kelly_sharpe": res.gate["kelly_sharpe"],
         "gate_passed": 1.0 if res.gate["passed"] else 0.0, "train_seconds": res.timings["train_s"]}
    for name in ("rl", "kelly", "cascade_rl", "cascade_kelly"):
        if name in v:
            m[f"{name}_total_return"] = v[name]["total_return"]
            m[f"{name}_max_drawdown"] = v[name]["max_drawdown"]
    return m


async def register(database_url: str, res: TrainResult, cfg: TrainConfig, *,
                   promote: bool = True) -> Any:
    """Register the version (gate result in its metrics; ``data_hash`` = the OOS signals' hash,
    ``params`` = ``cfg`` plus ``data``: the history's source, data hash and rows); promote it only
    if the gate passed. Returns the ``ModelPromoted`` body, or None."""
    from tm_common.db import make_engine
    from tm_common.models.registry import ModelRegistry
    from tm_quant.sizing.observation import OBS_SPEC

    engine = make_engine(database_url)
    try:
        reg = ModelRegistry(engine)
        await reg.register("rl", res.version, res.bundle_bytes, data_hash=res.data_hash,
                           features=list(OBS_SPEC),
                           params={**cfg.to_dict(), **({"data": res.data} if res.data else {})},
                           seed=cfg.seed,
                           metrics=registry_metrics(res))
        if promote and res.gate["passed"]:
            return await reg.promote(res.version, f"RL validation Sharpe {res.gate['rl_sharpe']:.3f}"
                                     f" > pure Kelly {res.gate['kelly_sharpe']:.3f}")
        return None
    finally:
        await engine.dispose()


async def publish_promotion(settings: Any, body: Any) -> str:
    """Append the ``ModelPromoted`` to ``models.promoted`` (services hot-reload on it)."""
    from tm_common.bus.streams import MODELS_PROMOTED
    from tm_common.events import Envelope
    from tm_common.service.wiring import make_bus

    bus = make_bus(settings)
    try:
        now = time.time_ns()
        env = Envelope.root(body, key=f"promoted:{body.kind}:{body.version}:{now}",
                            correlation_id=f"model:{body.version}", ts_event_ns=now, ts_init_ns=now)
        return await bus.publish(MODELS_PROMOTED, env)
    finally:
        await bus.close()
