"""The model life cycle of a handler whose engine runs one registry model (regime, signal, sizer).

- First start (no snapshot): the production model, looked up on the first event.
- Restart: the snapshot names a model version; that version is re-attached (from the cache or the
  registry), so a result never depends on when the process restarted. If the registry lost it,
  the production model is used instead.
- ``models.promoted`` of the handler's kind: the promoted version replaces the model between two
  events; the swap commits with the promotion's ack. A redelivered promotion changes nothing; a
  version the registry lacks is permanent (dead-lettered).

An unusable production bundle means no model (``/readyz`` says why) rather than dead-lettering
every event. The handler keeps its own ``engine``, ``models`` (a
:class:`~tm_common.models.cache.ModelCache`), ``metrics`` (a ``reloads`` counter labelled by
result) and ``_cold_start`` flag (the snapshot is the engine's state); the engine's names (``model``, ``model_version``,
``needs_attach``, ``set_model``, ``attach``) and the metrics' ``set_model(version,
created_at_ms)`` are the defaults, a handler with other names overrides the four small hooks.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Generic

import msgspec
import structlog

from tm_common.errors import NotReady, PermanentError
from tm_common.models.cache import M, ModelCache, NotProduction


class ModelLifecycle(Generic[M]):
    """Mixed into a ``StatefulHandler``; ``service`` names its log events (``<service>.…``),
    ``thing`` what it loads (``model``, ``policy``) in their names."""

    service: ClassVar[str]
    thing: ClassVar[str] = "model"
    engine: Any
    models: ModelCache[M]
    metrics: Any
    _cold_start: bool
    #: Encodes the engine's state (a dict) as the handler snapshot.
    _state_json: ClassVar[msgspec.json.Encoder] = msgspec.json.Encoder()

    # -- how the engine and the metrics hold the model (overridden by other names) -------------
    def _current(self) -> tuple[str, M | None]:
        """The engine's model version ("" = none) and model object (None until attached)."""
        return self.engine.model_version, self.engine.model

    def _attach(self, model: M) -> None:
        """Give the engine the object of the version its restored state names."""
        self.engine.attach(model)

    def _set_model(self, model: M | None) -> None:
        """Switch the engine to ``model`` (None = no model)."""
        self.engine.set_model(model)

    def _show_model(self) -> None:
        """Publish the model in use as metrics."""
        v = self._current()[0]
        self.metrics.set_model(v, self.models.created_at_ms.get(v))

    async def _model_swapped(self, model: M | None) -> dict[str, Any]:
        """Called after a restart fell back to production or a promotion swapped the model;
        returns extra fields for the reload log line."""
        return {}

    # -- StatefulHandler -------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return self._state_json.encode(self.engine.snapshot())

    def restore(self, data: bytes | None) -> None:
        self.engine.restore(None if data is None else json.loads(data))
        self._cold_start = data is None

    def ready(self) -> bool:
        """True when a model is in use or loads on the next event; else raises
        :class:`~tm_common.errors.NotReady` with the reason (``/readyz`` shows it)."""
        version, model = self._current()
        reason = self.models.unready_reason(in_use=model is not None, attach=version or None,
                                            cold_start=self._cold_start)
        if reason is not None:
            raise NotReady(reason)
        return True

    async def prefetch(self) -> None:
        """Look up (and parse) the production model so ``/readyz`` answers before any event.
        Raises ``TransientError`` while the registry does not answer."""
        await self.models.prefetch()

    # -- the life cycle ----------------------------------------------------------------------
    @property
    def _log(self) -> Any:
        return structlog.get_logger(f"tm.{self.service}")

    def _changed(self, result: str) -> None:
        self._show_model()
        self.metrics.reloads.labels(result).inc()

    async def _production_or_none(self) -> M | None:
        try:
            return await self.models.production()
        except self.models.error as err:
            self._log.error(f"{self.service}.production_{self.thing}_unusable", error=str(err))
            self.metrics.reloads.labels("bad_bundle").inc()
            return None

    async def _ensure_model(self) -> None:
        """Before each event: the production model on a first start, the snapshot's version
        after a restart."""
        if self._cold_start:
            self._set_model(await self._production_or_none())
            self._cold_start = False
            self._changed("cold_start")
            return
        version, model = self._current()
        if not version or model is not None:
            return
        model = await self.models.get(version)
        if model is not None:
            self._attach(model)
            self._show_model()
            return
        self._log.error(f"{self.service}.snapshot_{self.thing}_missing", version=version)
        model = await self._production_or_none()
        self._set_model(model)
        self._changed(f"snapshot_{self.thing}_missing")
        await self._model_swapped(model)

    async def _promote(self, version: str, reason: str = "") -> None:
        """Swap to the promoted ``version``; raises ``PermanentError`` if the registry lacks it
        or does not hold it as production now (``NotProduction``: dead-lettered, counted as
        ``tm_<service>_model_reloads_total{result="not_production"}``)."""
        current, in_use = self._current()
        if version == current and in_use is not None:
            return      # redelivered or repeated promotion: already in use
        try:
            model = await self.models.promoted(version)
        except NotProduction:
            self.metrics.reloads.labels("not_production").inc()
            raise
        if model is None:
            self.metrics.reloads.labels("unknown_version").inc()
            raise PermanentError(f"promoted {self.models.noun} {version!r} is not in the registry")
        self._set_model(model)
        extra = await self._model_swapped(model)
        self._changed("promoted")
        self._log.info(f"{self.service}.{self.thing}_reloaded", version=model.version,
                       previous=current or None, reason=reason, **extra)
