"""SAC actor → numpy arrays (``actor.npz``) and the registry bundle of kind ``rl``.

stable-baselines3's SAC actor is ``features_extractor`` (a ``FlattenExtractor``: identity for a
1-D Box) → ``latent_pi`` (Linear/activation pairs) → ``mu`` (Linear); the deterministic action is
``tanh(mu)``, which ``policy.predict`` then maps from [-1, 1] to the action space
(``low + (a + 1) (high - low) / 2``). Exported layer by layer (weights and biases as float64,
activation names, action scale/bias) for :class:`tm_quant.sizing.actor.NumpyActor`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from tm_common.models.bundle import Bundle, canonical_json, npz_bytes
from tm_quant.sizing.observation import OBS_SPEC

ACTOR_MEMBER = "actor.npz"


def actor_arrays(model: Any) -> dict[str, np.ndarray]:
    """The numpy arrays of ``model``'s (an SB3 ``SAC``) deterministic actor.

    Raises:
        ValueError: an actor this exporter does not understand (gSDE, a custom extractor, an
            activation other than ReLU/Tanh/ELU/LeakyReLU).
    """
    from stable_baselines3.common.torch_layers import FlattenExtractor
    from torch import nn

    policy = model.policy
    actor = policy.actor
    if getattr(actor, "use_sde", False):
        raise ValueError("gSDE actors are not supported (use_sde=False)")
    if not isinstance(actor.features_extractor, FlattenExtractor):
        raise TypeError(f"unsupported features extractor {type(actor.features_extractor).__name__}")
    if not policy.squash_output:
        raise ValueError("expected a squashed (tanh) SAC actor")
    names = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.ELU: "elu", nn.LeakyReLU: "leaky_relu"}
    layers: list[tuple[nn.Linear, str]] = []
    for m in actor.latent_pi:
        if isinstance(m, nn.Linear):
            layers.append((m, "identity"))
        elif type(m) in names and layers:
            layers[-1] = (layers[-1][0], names[type(m)])
        else:
            raise ValueError(f"unsupported actor layer {m}")
    layers.append((actor.mu, "tanh"))
    out: dict[str, np.ndarray] = {}
    for k, (lin, _) in enumerate(layers):
        out[f"w{k}"] = lin.weight.detach().cpu().double().numpy().copy()
        out[f"b{k}"] = lin.bias.detach().cpu().double().numpy().copy()
    out["activations"] = np.array([a for _, a in layers])
    low = np.asarray(model.action_space.low, dtype=np.float64)
    high = np.asarray(model.action_space.high, dtype=np.float64)
    out["action_scale"] = (high - low) / 2.0
    out["action_bias"] = (high + low) / 2.0
    return out


def build_bundle(arrays: dict[str, np.ndarray], *, max_fraction: float, gate: dict[str, Any],
                 extra: dict[str, Any] | None = None, version: str | None = None) -> Bundle:
    """The ``rl`` bundle (contract: :mod:`tm_sizer.domain.policy`).

    ``version`` default: ``rl-`` + 12 hex digits of the sha256 of the actor bytes and the
    manifest without its version, so the same training result always gets the same version
    (registration is idempotent) and a different one never collides.
    """
    actor = npz_bytes(**arrays)
    manifest = {"kind": "rl", "version": "", "obs_spec": list(OBS_SPEC), "actor": ACTOR_MEMBER,
                "max_fraction": float(max_fraction), "gate": dict(gate), **(extra or {})}
    if version is None:
        h = hashlib.sha256(actor + canonical_json({**manifest, "version": None})).hexdigest()
        version = f"rl-{h[:12]}"
    manifest["version"] = version
    return Bundle(manifest=manifest, files={ACTOR_MEMBER: actor})
