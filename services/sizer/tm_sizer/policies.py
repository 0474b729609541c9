"""RL policies from the model registry (kind ``rl``), parsed once and cached by version
(:class:`tm_common.models.cache.ModelCache`).

Errors are translated for the consumer: a registry that does not answer (database down) is a
``TransientError`` (the event is retried); a bundle that is not a usable ``rl`` policy is a
:class:`BadPolicy` (permanent: a promotion of it is dead-lettered and the current policy stays).
Loading is numpy only: :class:`~tm_quant.sizing.actor.NumpyActor`, never torch.
"""

from __future__ import annotations

from tm_common.errors import ModelUnusable as BadPolicy
from tm_common.errors import PermanentError
from tm_common.models.cache import ModelCache
from tm_common.models.cache import ModelSource as PolicySource

from tm_sizer.domain.policy import KIND, PolicyFormatError, RLPolicy

__all__ = ["BadPolicy", "PolicySource", "SizerPolicies", "parse"]


def parse(artifact: bytes) -> RLPolicy:
    """An :class:`RLPolicy` from bundle bytes. Raises :class:`BadPolicy`."""
    from tm_common.models.bundle import Bundle, BundleError

    try:
        b = Bundle.from_bytes(artifact)
        return RLPolicy.from_manifest(b.manifest, b.npz)
    except (BundleError, PolicyFormatError) as e:
        raise BadPolicy(f"rl bundle unusable: {e}") from e


class SizerPolicies(ModelCache[RLPolicy]):
    """Loads ``rl`` policies; keeps ``cache`` parsed versions in memory."""

    kind, noun, lookup_noun, error = KIND, "rl policy", "rl policy", BadPolicy

    def _parse(self, artifact: bytes) -> RLPolicy:
        return parse(artifact)

    def _production_unusable(self, version: str, err: PermanentError) -> str:
        return str(err)
