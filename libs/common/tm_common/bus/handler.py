"""What a service's handler looks like to the consumer loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tm_common.events.base import Envelope, EventBody


@dataclass(frozen=True)
class Emit:
    """An output of a handler: ``body`` to ``stream``. The consumer wraps it in an envelope
    caused by the input (deterministic id, same correlation id unless given)."""

    stream: str
    body: EventBody
    ts_event_ns: int | None = None
    correlation_id: str | None = None


@runtime_checkable
class Handler(Protocol):
    """Event in → domain logic → events out. Deterministic: no wall clock, no unseeded randomness."""

    async def handle(self, event: Envelope) -> Sequence[Emit]:
        """Handle one event. Raise ``PermanentError`` to dead-letter the input, ``TransientError``
        to retry it later without using up its delivery cap; any other exception counts as a
        failed delivery."""


@runtime_checkable
class StatefulHandler(Handler, Protocol):
    """A handler whose state is saved atomically with its outputs and acks."""

    def snapshot(self) -> bytes:
        """The state after the last handled event."""

    def restore(self, data: bytes | None) -> None:
        """Reset to a snapshot (None = initial state)."""
