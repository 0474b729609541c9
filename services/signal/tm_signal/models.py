"""Signal bundles from the model registry, parsed once and cached by version
(:class:`tm_common.models.cache.ModelCache` of kind ``signal``).

Errors are translated for the consumer: a registry that does not answer (database down) is a
``TransientError`` (the event is retried); a bundle this service cannot use is a
:class:`BadModel` wrapping :class:`~tm_signal.domain.model.ModelLoadError` (permanent: the
promotion is dead-lettered and the current model stays).
"""

from __future__ import annotations

from tm_common.errors import ModelUnusable as BadModel
from tm_common.models.cache import ModelCache, ModelSource

from tm_signal.domain.model import ModelLoadError, SignalModel

KIND = "signal"

__all__ = ["KIND", "BadModel", "ModelSource", "SignalModels", "parse"]


def parse(artifact: bytes, compile_trees: bool = True) -> SignalModel:
    """A :class:`SignalModel` from bundle bytes. Raises :class:`BadModel`."""
    from tm_common.models.bundle import Bundle, BundleError

    try:
        b = Bundle.from_bytes(artifact)
        return SignalModel.from_manifest(b.manifest, b.files, compile_trees=compile_trees)
    except (BundleError, ModelLoadError, KeyError, TypeError) as e:
        raise BadModel(f"signal bundle unusable: {e}") from e


class SignalModels(ModelCache[SignalModel]):
    """Loads ``signal`` models; ``cache`` parsed versions are kept (restores after a failed
    commit re-attach from memory, without the database). ``compile_trees``: evaluate the trees
    with :class:`~tm_signal.domain.forest.CompiledForest` (fast) instead of the booster."""

    kind, noun, error = KIND, "signal model", BadModel

    def __init__(self, source: ModelSource | None, cache: int = 4, *,
                 compile_trees: bool = True) -> None:
        super().__init__(source, cache)
        self.compile_trees = compile_trees

    def _parse(self, artifact: bytes) -> SignalModel:
        return parse(artifact, self.compile_trees)
