"""Fuzz test fixtures: a real local HTTP venue that answers whatever a test tells it to (the
peer of the client under test, not a mock): :class:`tm_common.testing.stub_http.StubHTTP`."""

from __future__ import annotations

import pytest
from tm_common.testing.stub_http import StubHTTP


@pytest.fixture
def bad_venue():
    v = StubHTTP()
    yield v
    v.close()
