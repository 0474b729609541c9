"""Regime bundles from the model registry, parsed once and cached by version.

A registry that does not answer is a ``TransientError`` (the event is retried); a bundle this
service cannot use is :class:`BadModel` (permanent: the promotion is dead-lettered, the current
model stays).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

from tm_common.errors import PermanentError, TransientError

from tm_regime.domain.model import ModelLoadError, RegimeBundleModel

KIND = "regime"


class ModelSource(Protocol):
    """What the service needs of :class:`tm_common.models.registry.ModelRegistry`."""

    async def production(self, kind: str) -> Any: ...

    async def get(self, version: str) -> Any: ...


class BadModel(PermanentError):
    """A registry record whose bundle cannot be used."""


def parse(artifact: bytes) -> RegimeBundleModel:
    """A :class:`RegimeBundleModel` from bundle bytes. Raises :class:`BadModel`."""
    from tm_common.models.bundle import Bundle, BundleError

    try:
        b = Bundle.from_bytes(artifact)
        return RegimeBundleModel.from_manifest(b.manifest, b.npz)
    except (BundleError, ModelLoadError, KeyError, TypeError) as e:
        raise BadModel(f"regime bundle unusable: {e}") from e


class RegimeModels:
    """Loads ``regime`` models; keeps ``cache`` parsed versions in memory."""

    def __init__(self, source: ModelSource | None, cache: int = 4) -> None:
        self.source, self._size = source, cache
        self._cache: OrderedDict[str, RegimeBundleModel] = OrderedDict()
        self.production_version: str | None = None
        self.production_checked = False
        self.last_error: str | None = None
        self.created_at_ms: dict[str, int] = {}     # version → registered at (for metrics)

    def cached(self, version: str) -> RegimeBundleModel | None:
        return self._cache.get(version)

    def _put(self, model: RegimeBundleModel) -> None:
        self._cache[model.version] = model
        self._cache.move_to_end(model.version)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    async def _call(self, what: str, coro) -> Any:
        try:
            rec = await coro
        except Exception as e:  # any registry failure: retry the event later
            self.last_error = f"model registry unavailable: {type(e).__name__}: {str(e)[:200]}"
            raise TransientError(f"{what}: {self.last_error}") from e
        self.last_error = None
        return rec

    def _model(self, rec: Any) -> RegimeBundleModel:
        self.created_at_ms[rec.version] = int(getattr(rec, "created_at_ms", 0) or 0)
        model = self.cached(rec.version)
        if model is None:
            if rec.artifact is None:
                raise BadModel(f"regime model {rec.version} has no artifact")
            model = parse(rec.artifact)
            if model.version != rec.version:
                raise BadModel(f"registry version {rec.version} holds bundle {model.version}")
            self._put(model)
        return model

    async def production(self) -> RegimeBundleModel | None:
        """The production regime model, or None (none registered, or no registry)."""
        if self.source is None:
            self.production_checked, self.production_version = True, None
            return None
        rec = await self._call("production model", self.source.production(KIND))
        self.production_checked = True
        self.production_version = None if rec is None else rec.version
        if rec is None:
            return None
        try:
            return self._model(rec)
        except BadModel as e:
            self.last_error = f"production regime model {rec.version} unusable: {e}"
            raise

    async def get(self, version: str) -> RegimeBundleModel | None:
        """Model ``version`` (cached if parsed before), or None if the registry lacks it."""
        model = self.cached(version)
        if model is not None or self.source is None:
            return model
        rec = await self._call(f"model {version}", self.source.get(version))
        if rec is None:
            return None
        if getattr(rec, "kind", KIND) != KIND:
            raise BadModel(f"model {version} is of kind {rec.kind!r}, not {KIND!r}")
        return self._model(rec)
