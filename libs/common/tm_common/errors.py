"""Errors grouped by what the caller should do; the one exception tree of the project.

- ``TransientError``: retry later; a bus consumer leaves the entry unacked.
- ``PermanentError``: retrying cannot help; a bus consumer dead-letters and acks.
- ``MalformedEvent``: an entry that does not decode (a ``PermanentError``).
Rejections are events, not exceptions.

The errors several services share are defined here once:

- :class:`NotReady` (transient): a readiness check failed; the message is what ``/readyz``
  shows. It is transient because a service that is not ready yet (no preflight, no model
  lookup) becomes ready without anyone changing the input.
- :class:`ModelUnusable` (permanent): a registry bundle (signal, regime or RL model, or the
  actor inside one) that this code cannot use; loading it again gives the same answer. It is
  also a ``ValueError`` because it reports a bad value (the bundle's content), and code that
  caught the ``ValueError`` subclasses it replaces still catches it.
- :class:`VenueError`: a call to a trading venue (Bybit, the exchange simulator over HTTP)
  failed. Whether retrying helps depends on the answer, so the root is neither transient nor
  permanent: :class:`VenueUnavailable` (no usable answer: network, HTTP error, garbled body) is
  transient; the executor's rejection/fatal kinds (``tm_executor.domain.errors``) are not.
  The exchange simulator's own ``RetCodeError`` is a different concept and is no ``VenueError``:
  it is the simulated venue's verdict on a request it serves (turned into a ``retCode``
  envelope by its HTTP layer), not a caller's failed call.
- :class:`LostOwnership`: a bus commit refused because this consumer no longer owns what it
  committed; nothing was written. Either another consumer of the group reclaimed the entry
  (the base class: the new owner handles it, this consumer goes on), or
  :class:`WriterSuperseded`: a newer instance of the group took the writer generation (one
  writer per consumer group, ARCHITECTURE §4): this instance must stop consuming.
- :class:`StateChanged`: a source's checked publication refused because its saved state is no
  longer the one it read (another instance of the source published first); nothing was
  written. The source reads the state again and decides anew (ingest's publisher, §4).

Third-party errors (redis-py, SQLAlchemy, httpx) become these at one boundary each:
:mod:`tm_common.errors_boundary`.
"""

from __future__ import annotations


class TradeMatrixError(Exception):
    """Base of every project error."""


class TransientError(TradeMatrixError):
    """Retrying later may succeed (network, rate limit, a dependency restarting)."""


class PermanentError(TradeMatrixError):
    """Retrying cannot succeed; the input goes to the dead-letter stream."""


class MalformedEvent(PermanentError):
    """A stream entry or payload that does not decode to a known event."""


class ConfigError(TradeMatrixError):
    """Invalid or missing configuration; raised at start-up with the setting named."""


class NotReady(TransientError):
    """A readiness check that failed; the message is the reason ``/readyz`` shows."""


class ModelUnusable(PermanentError, ValueError):
    """A model bundle (or a part of one) that this code cannot use: wrong kind, a feature or
    observation it does not compute, parameters that do not validate, no artifact."""


class LostOwnership(TradeMatrixError):
    """A commit refused because the entry is no longer pending for this consumer (another
    consumer of the group reclaimed it); nothing was written. The new owner handles it."""


class WriterSuperseded(LostOwnership):
    """A commit refused because a newer instance of this consumer group took the group's writer
    generation after this one did; nothing was written (no output, no state, no ack). The
    instance is stale and must stop consuming: the new one owns the group's state.

    ``group``: the consumer group; ``generation``: this instance's; ``current``: the newest one
    (``None`` if unknown)."""

    def __init__(self, group: str, generation: int, current: int | None = None) -> None:
        self.group, self.generation, self.current = group, generation, current
        newer = "a newer instance" if current is None else f"generation {current}"
        super().__init__(f"consumer group {group!r}: writer generation {generation} was "
                         f"superseded by {newer}; this instance stopped consuming")


class VenueError(TradeMatrixError):
    """A failed venue call: ``VenueError(message)`` or ``VenueError(endpoint, message)``.

    ``ret_code``: the venue's retCode (None for HTTP/network failures); ``http_status``: set for
    a non-200 answer; ``ambiguous``: the request may have been processed (timeout, connection
    lost, 5xx); ``retry_after_s``: wait before retrying. ``str()`` is the message alone, or
    ``"<endpoint>: <code_label>: <message>"`` when an endpoint is given.
    """

    def __init__(self, endpoint_or_message: str, message: str | None = None, *,
                 ret_code: int | None = None, http_status: int | None = None,
                 ambiguous: bool = False, retry_after_s: float | None = None) -> None:
        if message is None:
            self.endpoint, self.message = None, endpoint_or_message
        else:
            self.endpoint, self.message = endpoint_or_message, message
        self.ret_code, self.http_status = ret_code, http_status
        self.ambiguous, self.retry_after_s = ambiguous, retry_after_s
        if self.endpoint is None:
            super().__init__(self.message)
        else:
            super().__init__(f"{self.endpoint}: {self.code_label}: {self.message}")

    @property
    def code_label(self) -> str:
        """A bounded label for metrics: the retCode, ``http_<status>`` or ``network``."""
        if self.ret_code is not None:
            return str(self.ret_code)
        if self.http_status is not None:
            return f"http_{self.http_status}"
        return "network"


class VenueUnavailable(VenueError, TransientError):
    """The venue gave no usable answer (network error, HTTP error status, a body that is not
    the expected JSON, a non-zero retCode on a read-only market-data call); retry later."""


class StateChanged(TradeMatrixError):
    """A checked publication (``Bus.publish_many(..., expect=)``) refused because the saved
    state under ``key`` is not the one the publisher last read or wrote: another instance of
    the source published in the meantime. Nothing was written (no event, no state). Read the
    state again and decide what is still new."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"state {key!r} changed since it was read: another instance published "
                         "first; nothing was written")
