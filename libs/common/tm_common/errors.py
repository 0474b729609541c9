"""Errors grouped by what the caller should do.

- ``TransientError``: retry later; a bus consumer leaves the entry unacked.
- ``PermanentError``: retrying cannot help; a bus consumer dead-letters and acks.
- ``MalformedEvent``: an entry that does not decode (a ``PermanentError``).
Rejections are events, not exceptions.
"""


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
