"""The exchange sim as a real uvicorn subprocess on a free port, and pybit sessions against it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pybit.unified_trading import HTTP
from tm_common.testing.sim import KEY, QUIET_FAULTS, SECRET, Sim, run_sim  # noqa: F401


@pytest.fixture(scope="module")
def sim_server(tmp_path_factory):
    with run_sim(tmp_path_factory.mktemp("sim"), TM_SIM_KLINE_FORMING_ROW="true") as sim:
        log_path = sim.log_path
        yield sim
    assert SECRET not in Path(log_path).read_text(), "the API secret leaked into the sim's log"


@pytest.fixture
def sim(sim_server: Sim) -> Sim:
    """A fresh venue per test: reset state (first bar of the history), no faults."""
    sim_server.post("/sim/faults", QUIET_FAULTS)
    sim_server.post("/sim/reset", {"initial_balance": "100000"})
    return sim_server


@pytest.fixture
def session(sim: Sim) -> HTTP:
    return sim.session()
