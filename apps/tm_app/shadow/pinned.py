"""The model source of a shadow book: production's registry, except that the pinned kinds'
"production" model is the candidate under test."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tm_common.models.evidence import evidence_of
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


async def resolve_candidate(registry: ModelRegistry, candidate: str, *,
                            min_days: float | None = None) -> ModelRecord:
    """``candidate`` (a signal version, ``awaiting-evidence``, ``newest-refused`` or ``auto``)
    → its registry record. ``auto`` prefers a candidate that waits for forward evidence: its
    shadow days are what can promote it (:func:`tm_trainer.registry_ops.promote_ready`).

    Of several waiting, the one still collecting (fewer than ``min_days`` forward days; default
    ``TM_PROMOTE_MIN_SHADOW_DAYS``) with the most days is taken, the newest of equals: a book
    keeps the candidate it is paper-trading until that one has its days (and is promoted, or
    waits for a person), rather than restart the count for every newer one.

    Raises:
        RegistryError: unknown version, not a signal model, or no such candidate.
    """
    if candidate in (AUTO, AWAITING_EVIDENCE):
        from tm_trainer.promotion import min_forward_days

        least = min_forward_days(min_days)
        collecting = [(evidence_of(r.version, r.kind, r.metrics).forward_days, r)
                      for r in await registry.awaiting_evidence("signal")]
        collecting = [(d, r) for d, r in collecting if d < least or least <= 0]
        if collecting:
            return max(collecting, key=lambda dr: dr[0])[1]     # newest first: ties → newest
        if candidate == AWAITING_EVIDENCE:
            raise RegistryError("no signal candidate newer than production has passed its "
                                "walk-forward gates and still collects forward evidence "
                                "(train one with `tm train`, or name a version)")
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
