"""The exchange sim as a real process, one per test module, for ingest's live-path tests."""

from __future__ import annotations

import pytest
from tm_common.testing.sim import run_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with run_sim(tmp_path_factory.mktemp("sim")) as s:
        yield s
