"""redis-py, SQLAlchemy and httpx errors become TransientError/PermanentError at one boundary
each (``tm_common.errors_boundary``), with the original as ``__cause__``."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.exceptions as rx
from sqlalchemy import exc as sx
from tm_common.bus.protocol import GroupMissing, TransportError
from tm_common.errors import PermanentError, TransientError, VenueUnavailable
from tm_common.errors_boundary import db_error, db_errors, http_error, http_errors, redis_error, redis_errors


@pytest.mark.parametrize("err", [rx.ConnectionError("refused"), rx.TimeoutError("slow"),
                                 rx.AuthenticationError("WRONGPASS"), OSError("reset"),
                                 TimeoutError()])
def test_redis_unreachable_is_transport_error(err):
    ours = redis_error(err)
    assert isinstance(ours, TransportError) and isinstance(ours, TransientError)
    assert str(ours).startswith(f"redis: {type(err).__name__}")


def test_redis_replies():
    assert isinstance(redis_error(rx.ResponseError("NOGROUP No such key")), GroupMissing)
    assert isinstance(redis_error(rx.ResponseError("UNBLOCKED the stream key no longer exists")),
                      GroupMissing)
    assert redis_error(rx.ResponseError("BUSYGROUP Consumer Group name already exists")) is None
    assert redis_error(ValueError("not redis")) is None


def test_redis_context_manager_chains_the_cause():
    original = rx.ConnectionError("Connection refused")
    with pytest.raises(TransportError) as info, redis_errors():
        raise original
    assert info.value.__cause__ is original
    busy = rx.ResponseError("BUSYGROUP")
    with pytest.raises(rx.ResponseError) as info2, redis_errors():
        raise busy
    assert info2.value is busy


def test_the_bus_calls_through_the_boundary():
    from tm_common.bus.redis import RedisStreamsBus

    bus = RedisStreamsBus("redis://127.0.0.1:1/0")

    async def fail(e):
        raise e

    async def run():
        with pytest.raises(TransportError, match="redis: ConnectionError"):
            await bus._call(fail(rx.ConnectionError("refused")))
        with pytest.raises(GroupMissing):
            await bus._call(fail(rx.ResponseError("NOGROUP")))
        with pytest.raises(rx.ResponseError):
            await bus._call(fail(rx.ResponseError("WRONGTYPE")))
        assert await bus._call(asyncio.sleep(0, result=7)) == 7
        await bus.close()

    asyncio.run(run())


def _dbapi(cls):
    return cls("SELECT 1", {}, Exception("driver says no"))


@pytest.mark.parametrize("cls", [sx.OperationalError, sx.InterfaceError, sx.InternalError,
                                 sx.DatabaseError])
def test_db_unreachable_is_transient(cls):
    ours = db_error(_dbapi(cls))
    assert type(ours) is TransientError and str(ours).startswith(f"database: {cls.__name__}")
    assert type(db_error(sx.TimeoutError("pool"))) is TransientError
    assert type(db_error(sx.DisconnectionError("gone"))) is TransientError


@pytest.mark.parametrize("cls", [sx.IntegrityError, sx.DataError, sx.ProgrammingError,
                                 sx.NotSupportedError])
def test_db_statement_errors_are_permanent(cls):
    assert isinstance(db_error(_dbapi(cls)), PermanentError)


def test_db_context_manager():
    original = _dbapi(sx.OperationalError)
    with pytest.raises(TransientError) as info, db_errors("registry"):
        raise original
    assert info.value.__cause__ is original and str(info.value).startswith("registry: ")
    with pytest.raises(KeyError), db_errors():
        raise KeyError("not sqlalchemy")
    assert isinstance(db_error(sx.InvalidRequestError("orm misuse")), PermanentError)


def _status(code: int) -> httpx.HTTPStatusError:
    req = httpx.Request("GET", "http://venue/v5/market/kline")
    return httpx.HTTPStatusError("bad", request=req, response=httpx.Response(code, request=req))


def test_http_translation():
    req = httpx.Request("GET", "http://venue/")
    for e in (httpx.ConnectTimeout("t", request=req), httpx.ReadError("r", request=req),
              httpx.RemoteProtocolError("p", request=req), _status(503), _status(429)):
        ours = http_error(e, "kline BTCUSDT")
        assert isinstance(ours, VenueUnavailable) and isinstance(ours, TransientError)
        assert str(ours).startswith(f"kline BTCUSDT: {type(e).__name__}")
    for e in (_status(404), _status(401), httpx.UnsupportedProtocol("ftp", request=req)):
        assert isinstance(http_error(e), PermanentError)
    assert http_error(ValueError()) is None


def test_http_context_manager_with_a_custom_transient_class():
    class Flaky(TransientError):
        pass

    req = httpx.Request("GET", "http://x/")
    original = httpx.ConnectError("refused", request=req)
    with pytest.raises(Flaky) as info, http_errors("dvol", transient=Flaky):
        raise original
    assert info.value.__cause__ is original
