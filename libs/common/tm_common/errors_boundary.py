"""Third-party errors become the project's (:mod:`tm_common.errors`) here, one translator per
library, always ``raise <ours> from <theirs>`` so the cause stays in the traceback.

Each library has a function (the translation, ``None`` = not one of its errors we translate) and
a context manager that applies it::

    with redis_errors():
        return await client.xadd(...)

- **redis-py** (:func:`redis_error`): connection, timeout and socket errors (server down or
  restarting, network, refused credentials: ``AuthenticationError`` is a ``ConnectionError``)
  → ``TransportError`` (transient); a ``NOGROUP``/``UNBLOCKED`` reply → ``GroupMissing``
  (transient: the consumer re-creates its group). Any other reply error is a command error and is
  raised untouched (callers that expect one, such as ``BUSYGROUP``, check it).
- **SQLAlchemy** (:func:`db_error`): the database cannot be reached or gave up on the statement
  (``OperationalError``, ``InterfaceError``, ``InternalError``, a lost connection, a pool
  timeout) → ``TransientError``; the statement itself is wrong (``IntegrityError``,
  ``DataError``, ``ProgrammingError``, ``NotSupportedError``, any other SQLAlchemy error, e.g.
  ORM misuse) → ``PermanentError``.
- **httpx** (:func:`http_error`): no answer (timeouts, network and remote protocol errors, an
  undecodable body) or an answer of 5xx, 408, 425 or 429 → ``transient`` (default
  :class:`~tm_common.errors.VenueUnavailable`); a request that can never work (unsupported
  scheme, a local protocol error, redirect loop, any other 4xx) → ``PermanentError``.

Messages are ``"<what>: <ExceptionType>: <message>"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from tm_common.bus.protocol import GroupMissing, TransportError
from tm_common.errors import PermanentError, TradeMatrixError, TransientError, VenueUnavailable

TRANSIENT_HTTP_STATUS = frozenset({408, 425, 429})


def _msg(what: str, e: BaseException) -> str:
    return f"{what}: {type(e).__name__}: {e}"


def redis_error(e: BaseException, what: str = "redis") -> TradeMatrixError | None:
    """The project error for redis-py exception ``e`` (None: raise ``e`` as it is)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(e, (RedisConnectionError, RedisTimeoutError, OSError)):
        return TransportError(_msg(what, e))
    if isinstance(e, ResponseError) and ("NOGROUP" in str(e) or str(e).startswith("UNBLOCKED")):
        return GroupMissing(f"{what}: {e}")
    return None


def db_error(e: BaseException, what: str = "database") -> TradeMatrixError | None:
    """The project error for SQLAlchemy exception ``e`` (None: not a SQLAlchemy error)."""
    from sqlalchemy import exc

    if isinstance(e, (exc.IntegrityError, exc.DataError, exc.ProgrammingError,
                      exc.NotSupportedError)):
        return PermanentError(_msg(what, e))
    if isinstance(e, (exc.DBAPIError, exc.DisconnectionError, exc.TimeoutError)):
        return TransientError(_msg(what, e))
    if isinstance(e, exc.SQLAlchemyError):
        return PermanentError(_msg(what, e))
    return None


def http_error(e: BaseException, what: str = "http", *,
               transient: type[TransientError] = VenueUnavailable) -> TradeMatrixError | None:
    """The project error for httpx exception ``e`` (None: not an httpx error). ``transient``:
    the class for a failure that a retry may cure (it takes one message argument)."""
    import httpx

    if isinstance(e, httpx.HTTPStatusError):
        status = e.response.status_code
        if status >= 500 or status in TRANSIENT_HTTP_STATUS:
            return transient(_msg(what, e))
        return PermanentError(_msg(what, e))
    if isinstance(e, (httpx.UnsupportedProtocol, httpx.LocalProtocolError,
                      httpx.TooManyRedirects)):
        return PermanentError(_msg(what, e))
    if isinstance(e, httpx.HTTPError):
        return transient(_msg(what, e))
    return None


@contextmanager
def _translating(translate: Callable[[BaseException], TradeMatrixError | None]) -> Iterator[None]:
    """Raise ``translate(e) from e`` for an exception ``e`` of the block that ``translate``
    translates; any other is raised as it is."""
    try:
        yield
    except Exception as e:
        ours = translate(e)
        if ours is None:
            raise
        raise ours from e


def redis_errors(what: str = "redis") -> AbstractContextManager[None]:
    """Translate redis-py errors raised inside the block (:func:`redis_error`)."""
    return _translating(lambda e: redis_error(e, what))


def db_errors(what: str = "database") -> AbstractContextManager[None]:
    """Translate SQLAlchemy errors raised inside the block (:func:`db_error`)."""
    return _translating(lambda e: db_error(e, what))


def http_errors(what: str = "http", *,
                transient: type[TransientError] = VenueUnavailable) -> AbstractContextManager[None]:
    """Translate httpx errors raised inside the block (:func:`http_error`)."""
    return _translating(lambda e: http_error(e, what, transient=transient))
