"""Circuit breaker events."""

from __future__ import annotations

from typing import Literal

from tm_common.events.base import EventBody, register

BreakerState = Literal["CLOSED", "OPEN", "HALF_OPEN"]


@register
class BreakerStateChanged(EventBody, frozen=True, kw_only=True):
    """A transition of the circuit breaker, with what triggered it."""

    TYPE = "breaker.state_changed"
    SCHEMA_VERSION = 1

    from_state: BreakerState
    to_state: BreakerState
    trigger: str
    reason: str
    at_ms: int
