"""The sizer's own command stream ``sizer.command``: the live join-timeout flush.

No wall clock enters a decision. When a join (signal + regime + bar of one instrument and bar) has
waited longer than ``join_timeout_s`` of wall time, the service's timer (live only) appends a
:class:`JoinFlushRequested` here; the handler consumes this stream with its other inputs and
decides that bar with the last known regime (``regime_stale``), exactly as it would if the event
had been written by hand. Because the flush is an entry in a stream, a replay of the streams
reproduces it, and it is ordered with the other inputs.
"""

from __future__ import annotations

from tm_common.bus.streams import SIZER_COMMAND  # noqa: F401  (one place for stream names)
from tm_common.events.base import Envelope, EventBody, register


@register
class JoinFlushRequested(EventBody, frozen=True, kw_only=True):
    """Decide the pending join of ``instrument`` at ``bar_time_ms`` now, with what is there."""

    TYPE = "sizer.join_flush_requested"
    SCHEMA_VERSION = 1

    instrument: str
    bar_time_ms: int
    waited_s: float = 0.0
    reason: str = "join timeout"


def flush_envelope(instrument: str, bar_time_ms: int, *, waited_s: float, now_ns: int) -> Envelope:
    """A root event; its id derives from the join, so two timers flushing it agree."""
    body = JoinFlushRequested(instrument=instrument, bar_time_ms=bar_time_ms, waited_s=waited_s)
    return Envelope.root(body, key=f"flush:{instrument}:{bar_time_ms}",
                         correlation_id=f"{instrument}:{bar_time_ms}", ts_event_ns=now_ns,
                         ts_init_ns=now_ns)
