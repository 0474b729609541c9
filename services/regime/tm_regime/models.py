"""Regime bundles from the model registry, parsed once and cached by version
(:class:`tm_common.models.cache.ModelCache` of kind ``regime``).

A registry that does not answer is a ``TransientError`` (the event is retried); a bundle this
service cannot use is :class:`BadModel` (permanent: the promotion is dead-lettered, the current
model stays).
"""

from __future__ import annotations

from tm_common.errors import ModelUnusable as BadModel
from tm_common.models.cache import ModelCache, ModelSource

from tm_regime.domain.model import ModelLoadError, RegimeBundleModel

KIND = "regime"

__all__ = ["KIND", "BadModel", "ModelSource", "RegimeModels", "parse"]


def parse(artifact: bytes) -> RegimeBundleModel:
    """A :class:`RegimeBundleModel` from bundle bytes. Raises :class:`BadModel`."""
    from tm_common.models.bundle import Bundle, BundleError

    try:
        b = Bundle.from_bytes(artifact)
        return RegimeBundleModel.from_manifest(b.manifest, b.npz)
    except (BundleError, ModelLoadError, KeyError, TypeError) as e:
        raise BadModel(f"regime bundle unusable: {e}") from e


class RegimeModels(ModelCache[RegimeBundleModel]):
    """Loads ``regime`` models; keeps ``cache`` parsed versions in memory."""

    kind, noun, error = KIND, "regime model", BadModel

    def _parse(self, artifact: bytes) -> RegimeBundleModel:
        return parse(artifact)
