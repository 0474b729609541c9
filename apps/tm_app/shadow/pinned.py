"""The model source of a shadow book: production's registry, except that the pinned kinds'
"production" model is the candidate under test."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tm_common.models.registry import ModelRecord, ModelRegistry, RegistryError

from tm_app.shadow.config import AUTO, AWAITING_EVIDENCE, NEWEST_REFUSED


class PinnedRegistry:
    """Reads like :class:`ModelRegistry` for the services; ``production(kind)`` of a pinned kind
    answers the pinned version (checked to be of that kind). Everything else is the registry's."""

    def __init__(self, registry: ModelRegistry, pins: Mapping[str, str]) -> None:
        self.registry = registry
        self.pins = dict(pins)

    async def production(self, kind: str, instrument: str | None = None) -> ModelRecord | None:
        version = self.pins.get(kind)
        if version is None:
            return await self.registry.production(kind, instrument)
        rec = await self.registry.get(version)
        if rec is None:
            raise RegistryError(f"shadow candidate {version!r} is not in the registry")
        if rec.kind != kind:
            raise RegistryError(f"shadow candidate {version!r} is a {rec.kind} model, not {kind}")
        return rec

    async def get(self, version: str) -> ModelRecord | None:
        return await self.registry.get(version)

    def __getattr__(self, name: str) -> Any:      # engine, list, ...: the registry's own
        return getattr(self.registry, name)


async def resolve_candidate(registry: ModelRegistry, candidate: str) -> ModelRecord:
    """``candidate`` (a signal version, ``awaiting-evidence``, ``newest-refused`` or ``auto``)
    → its registry record. ``auto`` prefers the candidate that waits for forward evidence: its
    shadow days are what can promote it (:func:`tm_trainer.registry_ops.promote_ready`).

    Raises:
        RegistryError: unknown version, not a signal model, or no such candidate.
    """
    if candidate in (AUTO, AWAITING_EVIDENCE):
        waiting = await registry.awaiting_evidence("signal")
        if waiting:
            return waiting[0]
        if candidate == AWAITING_EVIDENCE:
            raise RegistryError("no signal candidate newer than production has passed its "
                                "walk-forward gates (train one with `tm train`, or name a "
                                "version)")
        candidate = NEWEST_REFUSED
    if candidate == NEWEST_REFUSED:
        for rec in await registry.list("signal"):           # newest first
            if rec.stage == "candidate" and rec.metrics.get("gate_passed") is False:
                return rec
        raise RegistryError("no refused signal candidate in the registry to shadow "
                            "(train one with `tm train`, or name a version)")
    found = await registry.get(candidate)
    if found is None:
        raise RegistryError(f"unknown model version {candidate!r}")
    if found.kind != "signal":
        raise RegistryError(f"{candidate} is a {found.kind} model; a shadow book runs signal "
                            "candidates")
    return found
