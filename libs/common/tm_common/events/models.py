"""Model registry events."""

from __future__ import annotations

from typing import Literal

from tm_common.events.base import EventBody, register


@register
class ModelPromoted(EventBody, frozen=True, kw_only=True):
    """A model version moved to production (promotion or rollback)."""

    TYPE = "model.promoted"
    SCHEMA_VERSION = 1

    kind: Literal["signal", "regime", "rl"]
    version: str
    previous_version: str | None = None
    instrument: str | None = None
    reason: str = ""
    metrics: dict[str, float] = {}
