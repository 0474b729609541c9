"""Unit tests of the service base reconfigure logging; put the process back afterwards."""

from __future__ import annotations

import logging

import pytest
import structlog


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
