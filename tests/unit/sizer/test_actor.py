"""The numpy actor equals the SB3 SAC actor (``policy.predict(obs, deterministic=True)``)."""

from __future__ import annotations

import numpy as np
import pytest
from tm_common.models.bundle import load_npz, npz_bytes
from tm_quant.sizing.actor import ActorFormatError, NumpyActor
from tm_quant.sizing.observation import OBS_CLIP, OBS_DIM
from tm_sizer.testing import random_actor_arrays

pytest.importorskip("torch", reason="torch not installed: install the trainer extra "
                    "(make install: the lock has torch==2.13.0+cpu, stable-baselines3, gymnasium)")
pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed")


def make_sac(low: float, high: float, seed: int = 3):
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC

    class Dummy(gym.Env):
        observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, (OBS_DIM,), np.float32)
        action_space = gym.spaces.Box(low, high, (1,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(OBS_DIM, np.float32), {}

        def step(self, a):
            return np.zeros(OBS_DIM, np.float32), 0.0, False, True, {}

    model = SAC("MlpPolicy", Dummy(), policy_kwargs={"net_arch": [64, 64]}, seed=seed,
                device="cpu", learning_starts=10)
    with torch.no_grad():      # widen mu so that tanh saturates for part of the inputs
        model.policy.actor.mu.weight.mul_(20.0)
    return model


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (-2.0, 0.5)])
def test_numpy_actor_equals_torch_predict(low, high):
    from tm_trainer.rl.export import actor_arrays

    model = make_sac(low, high)
    arrays = load_npz(npz_bytes(**actor_arrays(model)))       # through the stored format
    actor = NumpyActor(arrays, obs_dim=OBS_DIM)
    obs = np.random.default_rng(0).uniform(-OBS_CLIP, OBS_CLIP, (1000, OBS_DIM)).astype(np.float32)
    torch_actions, _ = model.policy.predict(obs, deterministic=True)
    np_actions = actor(obs.astype(np.float64))
    assert np_actions.shape == torch_actions.shape == (1000, 1)
    assert np.max(np.abs(np_actions - torch_actions)) < 1e-5
    assert np.abs(torch_actions).max() > 0.5 * max(abs(low), abs(high))   # saturated some
    for o in obs[:20]:                                                      # one at a time too
        a, _ = model.predict(o, deterministic=True)
        assert abs(actor.act(o) - float(a[0])) < 1e-5


def test_bad_actor_arrays_are_refused():
    good = random_actor_arrays()
    NumpyActor(good, obs_dim=OBS_DIM)
    with pytest.raises(ActorFormatError):
        NumpyActor(good, obs_dim=OBS_DIM + 1)
    with pytest.raises(ActorFormatError):
        NumpyActor({**good, "activations": np.array(["relu", "gelu", "tanh"])})
    with pytest.raises(ActorFormatError):
        NumpyActor({**good, "w1": np.zeros((16, 5))})
    with pytest.raises(ActorFormatError):
        NumpyActor({**good, "b0": np.full(16, np.nan)})
