"""pytest fixtures that several test folders share; a folder's ``conftest.py`` imports the ones
it wants by name (which is how pytest finds them)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(name="tmp_path")
def private_tmp_path() -> Iterator[Path]:
    """Replaces pytest's ``tmp_path`` with a private temp dir: concurrent pytest sessions of the
    same user prune each other's ``/tmp/pytest-of-<user>`` trees, and a data dir deleted under a
    detached server would leak that server (its record file gone)."""
    d = Path(tempfile.mkdtemp(prefix="tm-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
