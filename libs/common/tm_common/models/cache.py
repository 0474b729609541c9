"""One cache of parsed registry models for the services that load them (regime, signal, sizer).

:class:`ModelCache` loads the production model of one registry kind, or a given version, parses
it once and keeps the last ``cache`` parsed versions in memory (so a restore after a failed commit
re-attaches from memory, without the database). A ``models.promoted`` handler calls :meth:`get`
with the promoted version: that is the hot reload.

Errors are translated for the consumer: a registry that does not answer (database down) is a
``TransientError`` (the event is retried); a record this service cannot use is the subclass's
``error`` (a ``PermanentError``: the promotion is dead-lettered and the current model stays).
Either way the reason is kept in ``last_error`` for ``/readyz``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from tm_common.errors import PermanentError, TransientError

#: The readiness reason of a model whose registry has not answered yet: transient, unlike "no
#: production model" (``tm demo``'s start-up waits it out before saying a service trades flat).
NOT_CHECKED_YET = "model registry not checked yet"


class NotProduction(PermanentError):
    """A ``models.promoted`` event names a version that is not production in the registry."""


class ModelSource(Protocol):
    """What a service needs of :class:`tm_common.models.registry.ModelRegistry`."""

    async def production(self, kind: str) -> Any: ...

    async def get(self, version: str) -> Any: ...


class Versioned(Protocol):
    @property
    def version(self) -> str: ...


M = TypeVar("M", bound=Versioned)


class ModelCache(Generic[M]):
    """Loads models of registry kind ``kind``; keeps ``cache`` parsed versions (LRU).

    A subclass supplies ``kind``, ``noun`` (in messages, e.g. ``"signal model"``), ``error`` (the
    ``PermanentError`` for an unusable record) and :meth:`_parse`. ``source`` None = no registry
    (never a model). ``created_at_ms`` maps a loaded version to its registration time (metrics).
    """

    kind: ClassVar[str]
    noun: ClassVar[str]
    #: How registry look-ups are named in a ``TransientError`` ("production model", "model v1").
    lookup_noun: ClassVar[str] = "model"
    error: ClassVar[type[PermanentError]] = PermanentError

    def __init__(self, source: ModelSource | None, cache: int = 4) -> None:
        self.source, self._size = source, cache
        self._cache: OrderedDict[str, M] = OrderedDict()
        self.production_version: str | None = None
        self.production_checked = False
        self.last_error: str | None = None
        self.created_at_ms: dict[str, int] = {}     # version → registered at (for metrics)

    def _parse(self, artifact: bytes) -> M:
        """The model in bundle bytes; raises ``self.error`` if unusable."""
        raise NotImplementedError

    def _production_unusable(self, version: str, err: PermanentError) -> str:
        """``last_error`` when the production record is unusable."""
        return f"production {self.noun} {version} unusable: {err}"

    def cached(self, version: str) -> M | None:
        return self._cache.get(version)

    def put(self, model: M) -> None:
        self._cache[model.version] = model
        self._cache.move_to_end(model.version)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    async def _call(self, what: str, coro: Awaitable[Any]) -> Any:
        try:
            rec = await coro
        except Exception as e:  # any registry failure: retry the event later
            self.last_error = f"model registry unavailable: {type(e).__name__}: {str(e)[:200]}"
            raise TransientError(f"{what}: {self.last_error}") from e
        self.last_error = None
        return rec

    def _load(self, rec: Any) -> M:
        if getattr(rec, "kind", self.kind) != self.kind:
            raise self.error(f"model {rec.version} is of kind {rec.kind!r}, not {self.kind!r}")
        self.created_at_ms[rec.version] = int(getattr(rec, "created_at_ms", 0) or 0)
        model = self.cached(rec.version)
        if model is None:
            if rec.artifact is None:
                raise self.error(f"{self.noun} {rec.version} has no artifact")
            model = self._parse(rec.artifact)
            if model.version != rec.version:
                raise self.error(f"registry version {rec.version} holds bundle {model.version}")
            self.put(model)
        return model

    async def production(self) -> M | None:
        """The production model, or None (none promoted, or no registry)."""
        if self.source is None:
            self.production_checked, self.production_version = True, None
            return None
        rec = await self._call(f"production {self.lookup_noun}", self.source.production(self.kind))
        self.production_checked = True
        self.production_version = None if rec is None else rec.version
        if rec is None:
            return None
        try:
            return self._load(rec)
        except self.error as e:
            self.last_error = self._production_unusable(rec.version, e)
            raise

    async def get(self, version: str) -> M | None:
        """Model ``version`` (cached if parsed before), or None if the registry lacks it."""
        model = self.cached(version)
        if model is not None or self.source is None:
            return model
        rec = await self._call(f"{self.lookup_noun} {version}", self.source.get(version))
        return None if rec is None else self._load(rec)

    async def promoted(self, version: str) -> M | None:
        """Model ``version`` for a ``models.promoted`` event, or None if the registry lacks it.
        The registry is asked again even when the version is cached: a promotion activates only
        a version whose registry stage is ``production`` now (a forged or stale event naming a
        candidate, a refused or an archived version raises :class:`NotProduction`)."""
        if self.source is None:
            return None
        rec = await self._call(f"{self.lookup_noun} {version}", self.source.get(version))
        if rec is None:
            return None
        stage = getattr(rec, "stage", None)
        if stage != "production":
            raise NotProduction(f"promoted {self.noun} {version!r} is {stage or 'of no stage'} "
                                "in the registry, not production: not activated")
        return self._load(rec)

    async def prefetch(self) -> None:
        """Look up (and parse) the production model so ``/readyz`` answers before any event.
        Raises ``TransientError`` while the registry does not answer; an unusable production
        record is only recorded in ``last_error``."""
        try:
            await self.production()
        except self.error:
            pass

    def unready_reason(self, *, in_use: bool, attach: str | None, cold_start: bool) -> str | None:
        """Why a handler that needs a model of this kind is not ready (``/readyz``); None when a
        model is in use (``in_use``) or loads on the next event. ``attach``: the restored
        snapshot's version still to re-attach (None: nothing to re-attach); ``cold_start``: no
        snapshot, the production model loads on the first event."""
        if in_use:
            return None
        if attach is not None:
            if self.cached(attach) is not None:
                return None
            return self.last_error or f"{self.noun} {attach} not loaded yet"
        no_model = f"no production {self.noun}"
        if cold_start:
            if self.last_error or not self.production_checked:
                return self.last_error or NOT_CHECKED_YET
            return None if self.production_version is not None else no_model
        pv = self.production_version
        return no_model + (f" (registry production is {pv}; its models.promoted event is not "
                           "handled yet)" if pv else "")
