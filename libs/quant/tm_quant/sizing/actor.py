"""The exported SAC actor, evaluated with numpy (no torch at runtime).

``actor.npz`` layout (written by ``tm_trainer.rl.export``, read with ``allow_pickle=False``):

- ``w0, b0, ..., w{n-1}, b{n-1}``: layer ``k`` computes ``h = act_k(w_k @ h + b_k)`` (``w_k`` has
  torch's ``(out, in)`` shape); the last layer is the actor's ``mu`` head;
- ``activations``: ``n`` names, one per layer, from :data:`ACTIVATIONS` (SAC: ``relu`` for the
  hidden layers, ``tanh`` for ``mu``, the squashing of the deterministic action ``tanh(mu(obs))``);
- ``action_scale``, ``action_bias``: the action space's affine map (``low + (a + 1)(high - low)/2``
  as ``bias + scale * a``); ``[-1, 1]`` gives scale 1, bias 0;
- optional ``obs_mean``, ``obs_std``, ``obs_clip``: normalisation applied before the first layer
  (absent = identity).

The deterministic action times the manifest's ``max_fraction`` is the RL target fraction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "identity": lambda x: x,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
}


class ActorFormatError(ValueError):
    """The arrays are not a valid exported actor; the message says what is wrong.

    A plain ``ValueError``, not :class:`tm_common.errors.ModelUnusable`: tm_quant is pure and
    imports nothing from tm_common (``tests/unit/quant/test_purity.py``); the sizer translates
    it into ``ModelUnusable`` when it loads a policy (``tm_sizer.domain.policy``)."""


class NumpyActor:
    """A feed-forward actor from :func:`tm_common.models.load_npz` arrays.

    Args:
        arrays: the ``actor.npz`` arrays (module docstring).
        obs_dim: expected observation size (checked against the first layer), or None.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], obs_dim: int | None = None) -> None:
        try:
            acts = [str(a) for a in np.asarray(arrays["activations"]).tolist()]
        except KeyError as e:
            raise ActorFormatError("actor.npz has no 'activations'") from e
        n = len(acts)
        if n < 1:
            raise ActorFormatError("actor.npz has no layers")
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        prev = None
        for k in range(n):
            if f"w{k}" not in arrays or f"b{k}" not in arrays:
                raise ActorFormatError(f"actor.npz lacks w{k}/b{k}")
            w = np.asarray(arrays[f"w{k}"], dtype=np.float64)
            b = np.asarray(arrays[f"b{k}"], dtype=np.float64)
            if w.ndim != 2 or b.shape != (w.shape[0],) or (prev is not None and w.shape[1] != prev):
                raise ActorFormatError(f"layer {k}: shapes {w.shape} / {b.shape} do not chain")
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ActorFormatError(f"layer {k} has non-finite parameters")
            self.weights.append(w)
            self.biases.append(b)
            prev = w.shape[0]
        unknown = [a for a in acts if a not in ACTIVATIONS]
        if unknown:
            raise ActorFormatError(f"unknown activation(s) {unknown}; known: {sorted(ACTIVATIONS)}")
        self.activation_names = acts
        self._acts = [ACTIVATIONS[a] for a in acts]
        self.obs_dim = self.weights[0].shape[1]
        self.action_dim = self.weights[-1].shape[0]
        if obs_dim is not None and obs_dim != self.obs_dim:
            raise ActorFormatError(f"actor takes {self.obs_dim} inputs, observation has {obs_dim}")
        self.action_scale = self._vec(arrays, "action_scale", 1.0, self.action_dim)
        self.action_bias = self._vec(arrays, "action_bias", 0.0, self.action_dim)
        self.obs_mean = self._vec(arrays, "obs_mean", 0.0, self.obs_dim)
        self.obs_std = self._vec(arrays, "obs_std", 1.0, self.obs_dim)
        if (self.obs_std <= 0).any():
            raise ActorFormatError("obs_std must be > 0")
        clip = arrays.get("obs_clip")
        self.obs_clip = None if clip is None else float(np.asarray(clip))

    @staticmethod
    def _vec(arrays: Mapping[str, np.ndarray], name: str, default: float, n: int) -> np.ndarray:
        if name not in arrays:
            return np.full(n, default)
        v = np.asarray(arrays[name], dtype=np.float64).reshape(-1)
        if v.shape[0] == 1 and n != 1:
            v = np.full(n, v[0])
        if v.shape[0] != n or not np.isfinite(v).all():
            raise ActorFormatError(f"{name} must be {n} finite numbers")
        return v

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action(s) for one observation ``(obs_dim,)`` or a batch ``(n, obs_dim)``."""
        x = np.asarray(obs, dtype=np.float64)
        x = (x - self.obs_mean) / self.obs_std
        if self.obs_clip is not None:
            x = np.clip(x, -self.obs_clip, self.obs_clip)
        for w, b, act in zip(self.weights, self.biases, self._acts, strict=True):
            x = act(x @ w.T + b)
        action: np.ndarray = self.action_bias + self.action_scale * x
        return action

    def act(self, obs: np.ndarray) -> float:
        """The first action component of one observation, as a float."""
        return float(self(obs)[0])
