"""The breaker command stream ``risk.command`` and its one event type.

Commands are not part of the shared event catalogue, so the risk service defines its own: an
operator (through ``POST /breaker/trip`` or ``/breaker/reset``) or the service's own live
stale-data watchdog appends a :class:`BreakerCommandIssued` entry to ``risk.command``; the risk
handler consumes that stream with its other inputs and applies the command deterministically
through the same state and transition table, publishing the ``BreakerStateChanged`` in the same
MULTI/EXEC as the ack and the state. Nothing changes the breaker outside the handler, so a manual
trip is replayable, ordered with the other inputs and never lost.

Actions: ``trip`` (manual_trip), ``kill`` (kill: flatten and hold OPEN until a reset; needs a
reason), ``reset`` (manual_reset; needs a reason), ``tick`` (advance the handler clock to
``observed_at_ms``, wall time, and evaluate stale data and cool-down: the live watchdog's way to
act when no event arrives). Only ``tick`` moves the handler clock; trip/reset happen at the
handler's current clock, so replays stay deterministic.
"""

from __future__ import annotations

import uuid
from typing import Literal

from tm_common.bus import streams as _streams
from tm_common.events.base import Envelope, EventBody, register

# The stream name lives with the others in tm_common.bus.streams; the fallback keeps this module
# working against a tm_common that does not list it yet.
RISK_COMMAND: str = getattr(_streams, "RISK_COMMAND", "risk.command")
Action = Literal["trip", "reset", "tick", "kill"]


@register
class BreakerCommandIssued(EventBody, frozen=True, kw_only=True):
    """An operator (or the watchdog) asked the breaker to trip, kill, reset or re-check the
    clock. ``issued_by``: who (the admin token's name, and the CLI user it reports)."""

    TYPE = "breaker.command_issued"
    SCHEMA_VERSION = 2          # 2: the action "kill" (a reader of version 1 cannot decode it)

    command_id: str
    action: Action
    reason: str = ""
    issued_by: str = "admin"
    observed_at_ms: int = 0


def command_envelope(action: Action, *, reason: str, now_ns: int, issued_by: str = "admin",
                     command_id: str | None = None) -> Envelope:
    """A root event for a new command (``now_ns``: wall time at issue, ns)."""
    cid = command_id or uuid.uuid4().hex
    body = BreakerCommandIssued(command_id=cid, action=action, reason=reason, issued_by=issued_by,
                                observed_at_ms=now_ns // 1_000_000)
    return Envelope.root(body, key=f"command:{cid}", correlation_id=f"breaker:{cid}",
                         ts_event_ns=now_ns, ts_init_ns=now_ns)
