"""Fixtures for the embedded Redis tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def tmp_path():
    """A private temp dir instead of pytest's: concurrent pytest sessions of the same user prune
    each other's ``/tmp/pytest-of-<user>`` trees, and a data dir deleted under a detached
    server would leak that server (its record file gone)."""
    import shutil
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp(prefix="tm-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
