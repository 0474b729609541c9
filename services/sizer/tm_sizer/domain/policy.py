"""An RL sizing policy from a registry bundle of kind ``rl``. Pure: manifest + arrays in.

Manifest contract (kind ``"rl"``, written by ``tm_trainer.rl.export``)::

    {"kind": "rl", "version": str,
     "obs_spec": [str, ...],          # must equal tm_quant.sizing.observation.OBS_SPEC
     "actor": "actor.npz",            # member with the numpy actor (tm_quant.sizing.actor)
     "max_fraction": float,           # action 1.0 = this fraction of equity
     "gate": {"passed": bool, "rl_sharpe": float, "kelly_sharpe": float},
     ...}                             # training settings and metrics, informational

A policy whose gate did not pass can be loaded (for inspection) but is never used for sizing:
:attr:`RLPolicy.usable` is False and the cascade then treats the sizer as having no policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tm_common.errors import ModelUnusable
from tm_quant.sizing.actor import ActorFormatError, NumpyActor
from tm_quant.sizing.observation import OBS_DIM, OBS_SPEC

PolicyFormatError = ModelUnusable   # the shared error under this module's name (importable)
KIND = "rl"


@dataclass(frozen=True, eq=False)
class RLPolicy:
    """A loaded policy: ``fraction(obs, cap)`` is its signed target fraction of equity."""

    version: str
    actor: NumpyActor
    max_fraction: float
    gate_passed: bool
    rl_sharpe: float = math.nan
    kelly_sharpe: float = math.nan
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Only a policy that passed its validation gate may size positions."""
        return self.gate_passed

    def fraction(self, obs: np.ndarray, cap: float) -> float:
        """``tanh(mu(obs)) * max_fraction``, clipped to ``[-cap, cap]`` (non-finite → 0)."""
        f = self.actor.act(obs) * self.max_fraction
        if not math.isfinite(f):
            return 0.0
        return float(min(max(f, -cap), cap))

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any],
                      npz: Callable[[str], Mapping[str, np.ndarray]]) -> RLPolicy:
        """Build from a manifest and a loader of ``.npz`` members (``Bundle.npz``).

        Raises:
            PolicyFormatError: wrong kind, observation spec, actor or gate fields.
        """
        if manifest.get("kind") != KIND:
            raise PolicyFormatError(f"bundle kind is {manifest.get('kind')!r}, not {KIND!r}")
        version = manifest.get("version")
        if not isinstance(version, str) or not version:
            raise PolicyFormatError("manifest.version must be a non-empty string")
        spec = manifest.get("obs_spec")
        if list(spec or []) != list(OBS_SPEC):
            raise PolicyFormatError(f"policy {version} observes {spec}, this sizer builds "
                                    f"{list(OBS_SPEC)}")
        mf = manifest.get("max_fraction")
        if not isinstance(mf, (int, float)) or isinstance(mf, bool) or not 0 < mf <= 1:
            raise PolicyFormatError(f"policy {version}: max_fraction must be in (0, 1], got {mf}")
        gate = manifest.get("gate")
        if not isinstance(gate, Mapping) or not isinstance(gate.get("passed"), bool):
            raise PolicyFormatError(f"policy {version}: gate.passed must be a boolean")
        member = manifest.get("actor")
        if not isinstance(member, str) or not member.endswith(".npz"):
            raise PolicyFormatError(f"policy {version}: actor must name a .npz member")
        try:
            actor = NumpyActor(npz(member), obs_dim=OBS_DIM)
        except (ActorFormatError, KeyError, ValueError) as e:
            raise PolicyFormatError(f"policy {version}: actor unusable: {e}") from e
        if actor.action_dim != 1:
            raise PolicyFormatError(f"policy {version}: actor has {actor.action_dim} outputs, "
                                    "expected 1")
        return cls(version=version, actor=actor, max_fraction=float(mf),
                   gate_passed=bool(gate["passed"]),
                   rl_sharpe=_num(gate.get("rl_sharpe")), kelly_sharpe=_num(gate.get("kelly_sharpe")),
                   manifest=dict(manifest))


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
